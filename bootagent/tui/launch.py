"""What the boot agent calls: the menu on this console, in the form the console can take.

Settings come from the config's `console:` section and the kernel command line (bootagent.timeout,
bootagent.rows/cols, console=). A serial line that reports 0x0 is given a size (as `stty rows cols`),
kernel messages are kept off the screen while the menu is up, and only one console runs the menu at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import sys
import termios
from collections.abc import Iterator
from dataclasses import replace

from bootagent.boot.cmdline import BootParams
from bootagent.boot.session import MenuResult, RecoverySession
from bootagent.config import Config
from bootagent.tui.app import run_menu  # imported here, not lazily: the initramfs stages what this imports
from bootagent.tui.lines import run_lines
from bootagent.tui.owner import LOCK_PATH, menu_owner
from bootagent.tui.settings import DEFAULT_COLS, DEFAULT_ROWS, MenuSettings

LOG = logging.getLogger(__name__)

PRINTK = "/proc/sys/kernel/printk"


def settings_for(
    config: Config, params: BootParams, *, term: str | None, encoding: str | None
) -> MenuSettings:
    return MenuSettings.from_console(
        config.console,
        serial=params.serial_console,
        term=term,
        timeout=params.timeout,
        rows=params.rows,
        cols=params.cols,
        encoding=encoding,
    )


def ensure_size(fd: int, rows: int | None, cols: int | None) -> bool:
    """Give a terminal that reports 0x0 (a serial line) a size, so programs after the menu see it too.
    Returns whether it was set."""
    try:
        current_rows, current_cols, *_ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        if current_rows and current_cols:
            return False
        size = struct.pack("HHHH", rows or DEFAULT_ROWS, cols or DEFAULT_COLS, 0, 0)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def quiet_kernel(path: str = PRINTK) -> Iterator[None]:
    """Keep kernel messages (below KERN_ERR) off the console while the menu is up."""
    try:
        with open(path, encoding="ascii") as fh:
            saved = fh.read().split()
        with open(path, "w", encoding="ascii") as fh:
            fh.write("3\n")
    except OSError:
        saved = []
    try:
        yield
    finally:
        if saved:
            with contextlib.suppress(OSError), open(path, "w", encoding="ascii") as fh:
                fh.write(saved[0] + "\n")


def console_name(params: BootParams) -> str:
    if params.console:
        return params.console
    with contextlib.suppress(OSError):
        return os.ttyname(0).removeprefix("/dev/")
    return "console"


def run_interactive(
    session: RecoverySession,
    config: Config,
    params: BootParams,
    *,
    lock_path: str = LOCK_PATH,
    printk: str = PRINTK,
    notice: str = "",
    notice_hint: str = "",
    info: str = "",
    start_reset: str = "",
) -> MenuResult:
    """The menu; with a `notice` (unattended recovery stopped: a person must decide) it opens with it, under
    a title that says so, and waits without a countdown."""
    settings = settings_for(
        config, params, term=os.environ.get("TERM"), encoding=getattr(sys.stdout, "encoding", None)
    )
    if info:
        settings = replace(settings, info=info)
    if config.protection.agent_protected:
        settings = replace(settings, password_pbkdf2=config.protection.password_pbkdf2)
    if start_reset:
        settings = replace(settings, start_reset=start_reset, timeout=0)
    if notice:
        settings = replace(
            settings,
            timeout=0,
            title="bootagent: MANUAL INTERVENTION NEEDED",
            notice=notice,
            notice_hint=notice_hint,
        )
    with menu_owner(console_name(params), sys.stdout, path=lock_path), quiet_kernel(printk):
        if settings.line_mode or not sys.stdin.isatty():
            return run_lines(session, settings, sys.stdin, sys.stdout)
        ensure_size(sys.stdin.fileno(), settings.rows, settings.cols)
        try:
            return run_menu(session, settings)
        except Exception:  # the full-screen menu failed: the line mode still lets a person choose
            LOG.exception("the full-screen menu failed; using the line mode")
            return run_lines(session, settings, sys.stdin, sys.stdout)
