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
from bootagent.tui.lines import EOF, EOF_RETRY, LineReader, line_keys, run_lines
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.fake_session import FakeSession
from tests.unit.tui.pty_harness import MenuProcess


def run(tmp_path: Path, text: str, **settings: Any) -> tuple[Any, FakeSession, str]:
    session = FakeSession(tmp_path)
    out = io.StringIO()
    settings.setdefault("timeout", 0)
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


def test_during_the_countdown_a_line_only_stops_it(tmp_path: Path) -> None:
    """Enter alone stops the countdown, as the prompt says; it boots nothing, and neither does a command."""
    result, session, out = run(tmp_path, "\nb\n", timeout=30)
    assert "Booting beta in 30 s; Enter stops the countdown: 30" in out
    assert "The countdown is stopped." in out
    assert result.decision.environment == "beta"  # by the b, not by the Enter
    result, session, out = run(tmp_path / "b", "1\nP\ny\n", timeout=30)
    assert result.exit is MenuExit.POWEROFF
    assert session.calls == []
    assert "selected: 1 alpha" not in out  # the 1 was not acted on either


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
        MenuSettings(term="dumb", allow_shell=False, timeout=0),
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


def test_end_of_input_during_the_countdown_lets_it_run_out(tmp_path: Path) -> None:
    """The end of the input is nobody there: the countdown goes on and boots the default when it ends."""
    session = FakeSession(tmp_path)
    out = io.StringIO()
    settings = MenuSettings(term="dumb", timeout=1, allow_shell=False)
    result = run_lines(session, settings, io.StringIO(""), out)
    assert result.exit is MenuExit.BOOT
    assert session.calls == [{"op": "boot", "environment": "beta"}]
    assert "reboot" not in out.getvalue()


def test_end_of_input_on_a_closed_pipe_is_no_busy_loop(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)  # nobody will ever write: the pipe says "end of input" at every read
    out = io.StringIO()
    with os.fdopen(read_fd, "r") as stdin:
        cpu = time.process_time()
        result = run_lines(FakeSession(tmp_path), MenuSettings(term="dumb", timeout=3), stdin, out)
        cpu = time.process_time() - cpu
    assert result.exit is MenuExit.BOOT
    assert result.decision is not None
    assert result.decision.environment == "beta"
    assert cpu < 1.0, f"{cpu:.2f} s of CPU in a 3 s countdown on a closed pipe"


def test_reader_waits_after_an_end_of_input_and_reads_again() -> None:
    """Each end of input is reported, never taken as final, and the next read waits EOF_RETRY first."""
    read_fd, write_fd = os.pipe()
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with os.fdopen(read_fd, "r") as stdin:
        reader = LineReader(stdin, clock=lambda: now[0], sleep=sleep)
        os.write(write_fd, b"one\n")
        assert reader.readline(1) == "one"
        os.close(write_fd)
        assert reader.readline(10) is EOF
        assert slept == []
        assert reader.readline(10) is EOF  # read again, after a pause
        assert slept == [EOF_RETRY]
        assert reader.readline(0.1) is None  # a timeout shorter than the pause: just the timeout
        assert slept == pytest.approx([EOF_RETRY, 0.1])
        assert reader.readline(None) is EOF
        assert sum(slept) == pytest.approx(2 * EOF_RETRY)  # EOF_RETRY after each end of input


def test_end_of_input_without_a_countdown_does_nothing(tmp_path: Path) -> None:
    """On a terminal, Ctrl-D is an end of input, and the terminal is still there: no boot, no reboot."""
    master, slave = os.openpty()
    out = io.StringIO()
    session = FakeSession(tmp_path)
    results: list[Any] = []
    settings = MenuSettings(term="dumb", timeout=0, allow_shell=False)
    with os.fdopen(slave, "r") as stdin:
        thread = threading.Thread(target=lambda: results.append(run_lines(session, settings, stdin, out)))
        thread.start()
        os.write(master, b"\x04")  # Ctrl-D at the start of a line: read() returns 0 bytes
        for _ in range(100):
            if "(end of input: nothing was done" in out.getvalue():
                break
            time.sleep(0.05)
        os.write(master, b"\x04")
        os.write(master, b"P\ny\n")
        thread.join(10)
    os.close(master)
    assert results
    assert results[0].exit is MenuExit.POWEROFF
    assert session.calls == []
    text = out.getvalue()
    assert text.count("(end of input: nothing was done; the menu waits for a command)") == 1
    assert "reboot" not in text.lower().split("[number")[0]


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
        assert time.monotonic() - started >= 0.15  # it waited (no upper bound: no timing test)
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
    assert "Booting beta in 2 s; Enter stops the countdown: 2 1" in out.getvalue()


def test_a_line_stops_the_countdown(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    threading.Timer(0.3, lambda: os.write(write_fd, b"3\n3\nb\n")).start()
    with os.fdopen(read_fd, "r") as stdin:
        result = run_lines(FakeSession(tmp_path), MenuSettings(term="dumb", timeout=5), stdin, out)
    os.close(write_fd)
    assert result.decision is not None
    assert result.decision.environment == "gamma"  # the first 3 only stopped the countdown
    assert "The countdown is stopped." in out.getvalue()


def test_line_keys_take_only_ascii_digits_as_numbers() -> None:
    st = S.MenuState(None, None)
    assert line_keys(st, "\u00b3") == ["\u00b3"]  # '³'.isdigit(), but no row number
    assert st.handle("\u00b3") == []


def test_output_that_fails_does_not_stop_the_menu(tmp_path: Path) -> None:
    class HungUp(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    session = FakeSession(tmp_path)
    settings = MenuSettings(term="dumb", timeout=1)
    result = run_lines(session, settings, io.StringIO(""), HungUp())
    assert result.exit is MenuExit.BOOT
    assert session.calls == [{"op": "boot", "environment": "beta"}]


@pytest.mark.subprocess
def test_dumb_terminal_in_a_pty(tmp_path: Path) -> None:
    p = MenuProcess(tmp_path, "--timeout", "9", term="dumb", rows=0, cols=0, screen=(60, 100))
    try:
        p.wait_for("Booting beta in 9 s")
        p.send("\r")
        p.wait_for("The countdown is stopped.")
        p.send("3\r")
        p.wait_for("selected: 3 gamma")
        p.send("2\r")
        p.wait_for("selected: 2 beta")
        p.send("r\r")
        p.wait_for("Roll back beta: how many steps back?")
        p.send("\r")
        p.wait_for("beta-s3 is now the default")
        p.send("!\r")
        result = p.result()
    finally:
        p.close()
    assert result["exit"] == "shell"
    assert result["calls"] == [{"op": "rollback", "environment": "beta", "steps": 1, "destructive": False}]
    assert b"\x1b[" not in p.raw  # no escape sequences at all on a dumb terminal


@pytest.mark.subprocess
def test_ctrl_d_in_a_pty_does_not_reboot(tmp_path: Path) -> None:
    p = MenuProcess(tmp_path, "--lines", "--no-shell", term="vt220", screen=(60, 100))
    try:
        p.wait_for("[number | Enter=boot")
        p.send("\x04")
        p.wait_for("(end of input: nothing was done; the menu waits for a command)")
        p.send("\x04\x04", settle=1.2)  # more of them: nothing more happens, and nothing is printed
        assert p.text.count("(end of input") == 1
        p.send("3\r")
        p.wait_for("selected: 3 gamma")  # still answering
        p.send("P\r")
        p.wait_for("[y/N] > ")
        p.send("y\r")
        result = p.result()
    finally:
        p.close()
    assert result["exit"] == "poweroff"
    assert result["calls"] == []
