"""The numbered line mode: the same menu over a pipe, a StringIO, or a TERM=dumb pty."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bootagent.boot.session import MenuExit
from bootagent.tui import state as S
from bootagent.tui.lines import EOF, LineReader, line_keys, run_lines
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.fake_session import FakeSession
from tests.unit.tui.pty_harness import MenuProcess


def run(tmp_path: Path, text: str, **settings: Any) -> tuple[Any, FakeSession, str]:
    session = FakeSession(tmp_path)
    out = io.StringIO()
    result = run_lines(session, MenuSettings(term="dumb", **settings), io.StringIO(text), out)
    return result, session, out.getvalue()


def test_numbers_pick_rows_and_letters_are_keys(tmp_path: Path) -> None:
    result, session, out = run(tmp_path, "1\nb\n")
    assert result.exit is MenuExit.BOOT
    assert result.decision.environment == "alpha"
    assert session.calls == [{"op": "boot", "environment": "alpha"}]
    assert "    1   + alpha" in out
    assert "selected: 1 alpha" in out
    assert "[number | Enter=boot |" in out


def test_empty_line_is_enter_and_boots_the_selection(tmp_path: Path) -> None:
    result, session, _ = run(tmp_path, "\n")
    assert result.decision.environment == "beta"


def test_destructive_rollback_needs_the_word_on_its_own_line(tmp_path: Path) -> None:
    result, session, out = run(tmp_path, "r\n2\nD\nrollback\nr\n2\nD\nROLLBACK\nP\ny\n")
    assert result.exit is MenuExit.POWEROFF
    assert session.calls == [{"op": "rollback", "environment": "beta", "steps": 2, "destructive": True}]
    assert "cancelled: 'rollback' is not ROLLBACK; nothing was changed" in out
    assert "type ROLLBACK > " in out
    assert "destroyed: s3" in out


def test_help_journal_shell_disabled_and_errors(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, fail={"boot": S_refused()})
    out = io.StringIO()
    result = run_lines(
        session,
        MenuSettings(term="dumb", allow_shell=False),
        io.StringIO("?\nq\nl\nq\n!\n\nsnapshot\nR\ny\n"),
        out,
    )
    text = out.getvalue()
    assert result.exit is MenuExit.REBOOT
    assert "Keys (single keys work" in text
    assert "The journal is empty." in text
    assert "shell: disabled by configuration" in text
    assert "error: booting beta failed: refused" in text
    assert "hint: pick another" in text
    assert "does nothing here" in text  # a word that is no command


def S_refused() -> Exception:
    from bootagent.errors import RefusedError

    return RefusedError("refused", hint="pick another")


def test_end_of_input_boots_the_default_or_falls_back(tmp_path: Path) -> None:
    result, _, out = run(tmp_path / "a", "")
    assert result.exit is MenuExit.BOOT
    assert "end of input: booting the default, beta" in out
    session = FakeSession(tmp_path / "b", default=None)
    result = run_lines(session, MenuSettings(term="dumb", allow_shell=False), io.StringIO(""), io.StringIO())
    assert result.exit is MenuExit.REBOOT


def test_line_keys() -> None:
    st = S.MenuState(None, None)
    assert line_keys(st, "") == [S.ENTER]
    assert line_keys(st, " 12 ") == ["1", "2", S.ENTER]
    assert line_keys(st, "j") == ["j"]
    assert line_keys(st, "up") == [S.UP]
    assert line_keys(st, "hello") == ["KEY_UNKNOWN_LINE"]
    st.screen = S.Screen.CONFIRM
    st.pending = S.Confirm("t", (), (), word="ROLLBACK")
    assert line_keys(st, "ROLLBACK") == [*"ROLLBACK", S.ENTER]


def test_reader_times_out_on_a_pipe_and_splits_lines() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "r") as stdin:
        reader = LineReader(stdin)
        started = time.monotonic()
        assert reader.readline(0.2) is None
        assert 0.15 < time.monotonic() - started < 1.0
        os.write(write_fd, b"one\r\ntwo\nthr")
        assert reader.readline(1) == "one"
        assert reader.readline(1) == "two"
        assert reader.readline(0.05) is None
        os.write(write_fd, b"ee\n")
        assert reader.readline(1) == "three"
        os.close(write_fd)
        assert reader.readline(1) is EOF


def test_countdown_over_a_pipe_expires_and_boots(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    with os.fdopen(read_fd, "r") as stdin:
        started = time.monotonic()
        result = run_lines(FakeSession(tmp_path), MenuSettings(term="dumb", timeout=2), stdin, out)
    os.close(write_fd)
    assert time.monotonic() - started >= 1.5  # it did wait for the countdown (no upper bound: no timing test)
    assert result.exit is MenuExit.BOOT
    assert "Booting beta in 2 s; type anything and Enter to stop: 2 1" in out.getvalue()


def test_a_line_stops_the_countdown(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    threading.Timer(0.3, lambda: os.write(write_fd, b"3\nb\n")).start()
    with os.fdopen(read_fd, "r") as stdin:
        result = run_lines(FakeSession(tmp_path), MenuSettings(term="dumb", timeout=5), stdin, out)
    os.close(write_fd)
    assert result.decision is not None
    assert result.decision.environment == "gamma"


@pytest.mark.subprocess
def test_dumb_terminal_in_a_pty(tmp_path: Path) -> None:
    p = MenuProcess(tmp_path, "--timeout", "9", term="dumb", rows=0, cols=0, screen=(60, 100))
    try:
        p.wait_for("Booting beta in 9 s")
        p.send("2\r")
        p.wait_for("selected: 2 beta")
        p.send("r\r")
        p.wait_for("Roll back beta: pick how many steps back")
        p.send("\r")
        p.wait_for("beta-s3 is now the default")
        p.send("!\r")
        result = p.result()
    finally:
        p.close()
    assert result["exit"] == "shell"
    assert result["calls"] == [{"op": "rollback", "environment": "beta", "steps": 1, "destructive": False}]
    assert b"\x1b[" not in p.raw  # no escape sequences at all on a dumb terminal
