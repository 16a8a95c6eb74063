"""What the boot agent calls: settings from config and command line, size, kernel messages, line mode."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
from pathlib import Path

import pytest

from bootagent.boot.cmdline import parse_cmdline
from bootagent.boot.session import MenuExit
from bootagent.config import Config, Console
from bootagent.tui import launch
from tests.unit.tui.fake_session import FakeSession


def test_settings_from_config_and_kernel_command_line() -> None:
    params = parse_cmdline(
        "root=ZFS=rpool/ROOT/beta bootagent=menu console=tty0 console=ttyS0,115200n8 "
        "bootagent.timeout=3 bootagent.rows=40 bootagent.cols=100"
    )
    settings = launch.settings_for(
        Config(console=Console(menu_timeout=9)), params, term="vt220", encoding="utf-8"
    )
    assert settings.serial
    assert (settings.timeout, settings.rows, settings.cols) == (3, 40, 100)
    assert (settings.ascii, settings.color) == (True, False)
    local = launch.settings_for(Config(), parse_cmdline("console=tty1"), term="linux", encoding="utf-8")
    assert (local.serial, local.ascii, local.color, local.timeout) == (False, False, True, 10)
    assert launch.console_name(params) == "ttyS0"


def test_a_serial_line_without_a_size_gets_one() -> None:
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        assert launch.ensure_size(slave, None, 100)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (24, 100)
        assert not launch.ensure_size(slave, 50, 50)  # a size is there: left alone
    finally:
        os.close(master)
        os.close(slave)
    assert not launch.ensure_size(-1, None, None)


def test_kernel_messages_are_quiet_while_the_menu_is_up(tmp_path: Path) -> None:
    printk = tmp_path / "printk"
    printk.write_text("7\t4\t1\t7\n")
    with launch.quiet_kernel(str(printk)):
        assert printk.read_text() == "3\n"
    assert printk.read_text() == "7\n"
    with launch.quiet_kernel(str(tmp_path / "missing")):
        pass
    assert not (tmp_path / "missing").exists()


def test_run_interactive_uses_lines_on_a_dumb_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n1\nb\n"))  # the first line stops the countdown
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    printk = tmp_path / "printk"
    printk.write_text("4 4 1 7\n")
    session = FakeSession(tmp_path)
    result = launch.run_interactive(
        session,
        Config(),
        parse_cmdline("bootagent=menu console=ttyS0"),
        lock_path=str(tmp_path / "menu.lock"),
        printk=str(printk),
    )
    assert result.exit is MenuExit.BOOT
    assert result.decision is not None
    assert result.decision.environment == "alpha"
    assert "selected: 1 alpha" in out.getvalue()
    assert printk.read_text() == "4\n"
