"""The blessed loop: key decoding and painting in-process; the whole menu in a pty, as a person uses it,
under Debian's blessed 1.19 and PyPI's blessed, on several TERM values and sizes."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import random
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootagent.tui import app
from bootagent.tui import state as S
from bootagent.tui.render import Size
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.pty_harness import (
    BLESSED,
    CTRL_L,
    DOWN,
    ENTER,
    ESC,
    RIGHT,
    SS3_DOWN,
    SS3_UP,
    UP,
    MenuProcess,
)


# --- in-process pieces ---------------------------------------------------------------------------------
class Key(str):
    """Looks like a blessed Keystroke."""

    def __new__(cls, text: str, name: str | None = None) -> Key:
        key = super().__new__(cls, text)
        key.name = name  # type: ignore[attr-defined]
        key.is_sequence = name is not None  # type: ignore[attr-defined]
        return key


def reader(*keys: Key) -> app.KeyReader:
    queue = list(keys)

    def inkey(timeout: float, esc_delay: float) -> Key:
        return queue.pop(0) if queue else Key("")

    return app.KeyReader(inkey, 0.01)


def read_all(r: app.KeyReader) -> list[str]:
    out = []
    while key := r.read(0):
        out.append(key)
    return out


def test_normalize_key() -> None:
    assert app.normalize_key(Key("j")) == "j"
    assert app.normalize_key(Key("\r")) == S.ENTER
    assert app.normalize_key(Key("\n", "KEY_ENTER")) == S.ENTER
    assert app.normalize_key(Key("\x7f", "KEY_BACKSPACE")) == S.BACKSPACE
    assert app.normalize_key(Key("\x1b[3~", "KEY_DELETE")) == S.BACKSPACE
    assert app.normalize_key(Key("\x0c", "KEY_CTRL_L")) == S.CTRL_L
    assert app.normalize_key(Key("\x1b[A", "KEY_UP")) == S.UP
    assert app.normalize_key(Key("\x03")) == "KEY_UNKNOWN"  # Ctrl-C is a key (raw mode), not a signal
    assert app.normalize_key(Key("")) == ""
    assert app.normalize_key(Key("\ufffd")) == S.INVALID  # bytes the decoder could not decode
    assert app.normalize_key(Key("\x1b\ufffd", "KEY_ALT_UNKNOWN")) == S.INVALID
    assert app.normalize_key(Key("\x85")) == S.UNKNOWN  # a C1 control, well encoded
    assert app.normalize_key(Key("é")) == "é"


def test_ss3_arrows_are_joined_for_both_blessed_versions() -> None:
    # 1.19 on TERM=linux: ESC, 'O', 'B'; 1.5x: ESC-O (Alt-Shift-O), 'B'
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("O"), Key("B"))) == [S.DOWN]
    assert read_all(reader(Key("\x1bO", "KEY_ALT_SHIFT_O"), Key("A"))) == [S.UP]
    assert read_all(reader(Key("\x1bO", "KEY_ALT_SHIFT_O"), Key("x"))) == ["KEY_UNKNOWN", "x"]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("q"))) == [S.ESC, "q"]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"))) == [S.ESC]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("O"))) == ["KEY_UNKNOWN"]  # Alt-O


# --- the keyboard adapter, over a pipe ----------------------------------------------------------------
class PipeTerm:
    """The keyboard side of a blessed Terminal, as both versions have it: a descriptor, a strict incremental
    decoder made in the constructor, kbhit() over select(), and an inkey() that reads through kbhit() and
    getch() (which Keyboard replaces)."""

    def __init__(self, fd: int) -> None:
        self._keyboard_fd = fd
        self._keyboard_decoder = codecs.getincrementaldecoder("utf-8")()

    def kbhit(self, timeout: float | None = None) -> bool:
        return bool(select.select([self._keyboard_fd], [], [], timeout)[0])

    def getch(self) -> str:
        raise AssertionError("Keyboard replaces getch")

    def inkey(self, timeout: float, esc_delay: float) -> Key:
        text = ""
        while not text and self.kbhit(timeout):
            text += self.getch()
            timeout = 0
        return Key(text)


@pytest.fixture
def pipe() -> Iterator[tuple[PipeTerm, int]]:
    read_fd, write_fd = os.pipe()
    yield PipeTerm(read_fd), write_fd
    os.close(read_fd)
    with contextlib.suppress(OSError):
        os.close(write_fd)


def gone(keyboard: app.Keyboard) -> bool:
    return keyboard.gone  # (a call, so mypy does not narrow it across reads)


def test_keyboard_decodes_any_bytes_without_raising(pipe: tuple[PipeTerm, int]) -> None:
    term, write_fd = pipe
    keyboard = app.Keyboard(term)
    os.write(write_fd, b"a\xff\x80\xc3\xa9\x00\x13\xc3")
    got = [term.getch() for _ in range(8)]
    assert got == ["a", "\ufffd", "\ufffd", "", "é", "\x00", "\x13", ""]
    assert keyboard.pending()  # the start of a character whose end never came
    assert keyboard.flush() == "\ufffd"
    assert not keyboard.pending()
    assert not keyboard.gone


def test_keyboard_end_of_input_is_gone_and_looked_at_again(pipe: tuple[PipeTerm, int]) -> None:
    term, write_fd = pipe
    keyboard = app.Keyboard(term)
    os.close(write_fd)
    assert term.kbhit(0)  # a closed pipe (or a hung-up terminal) is "readable" for ever
    assert term.getch() == ""
    assert gone(keyboard)
    assert not term.kbhit(5.0)  # at once: blessed's inkey() does not spin on it
    keyboard.look_again()
    assert not gone(keyboard)
    assert term.getch() == ""
    assert gone(keyboard)


def test_keyboard_that_comes_back_is_read_again(caplog: pytest.LogCaptureFixture) -> None:
    """A terminal (here in canonical mode, where Ctrl-D is a 0-byte read) is still there after an end of
    input: once looked at again, its keys are read."""
    master, slave = os.openpty()
    try:
        term = PipeTerm(slave)
        keyboard = app.Keyboard(term)
        keys = app.KeyReader(term.inkey, 0.01, keyboard, sleep=lambda seconds: None)
        os.write(master, b"\x04")
        assert keys.read(1.0) == ""
        assert gone(keyboard)
        os.write(master, b"j\n")
        assert keys.read(1.0) == "j"  # the look after the pause finds the terminal back
        assert not gone(keyboard)
        assert "the terminal is back" in caplog.text
    finally:
        os.close(master)
        os.close(slave)


def test_key_reader_turns_bad_bytes_into_keys(pipe: tuple[PipeTerm, int]) -> None:
    term, write_fd = pipe
    keyboard = app.Keyboard(term)
    keys = app.KeyReader(term.inkey, 0.01, keyboard)
    os.write(write_fd, b"\xffj\xc3\xa9")
    assert [keys.read(0), keys.read(0), keys.read(0)] == [S.INVALID, "j", "é"]
    os.write(write_fd, b"\xe2\x82")  # two bytes of three, and nothing after them: line noise
    assert keys.read(0) == S.INVALID
    assert keys.read(0) == ""


def test_key_reader_sleeps_while_the_keyboard_is_gone(pipe: tuple[PipeTerm, int]) -> None:
    term, write_fd = pipe
    keyboard = app.Keyboard(term)
    slept: list[float] = []
    keys = app.KeyReader(term.inkey, 0.01, keyboard, sleep=slept.append)
    os.close(write_fd)
    assert keys.read(0.0) == ""
    assert keyboard.gone
    assert slept == []
    for _ in range(3):
        assert keys.read(0.0) == ""
    assert slept == [app.GONE_POLL] * 3  # a pause before every look: no busy loop
    assert keys.read(1.0) == ""
    assert slept[-1] == 1.0


def test_key_reader_takes_eoferror_as_gone() -> None:
    """blessed 1.5x's own getch() raises EOFError at the end of the input."""

    class Ended:
        _keyboard_fd = None

        def kbhit(self, timeout: float | None = None) -> bool:
            return False

        def inkey(self, timeout: float, esc_delay: float) -> Key:
            raise EOFError

    term = Ended()
    keyboard = app.Keyboard(term)
    keyboard.gone = False  # as if it had a descriptor that just ended
    slept: list[float] = []
    keys = app.KeyReader(term.inkey, 0.01, keyboard, sleep=slept.append)
    assert keys.read(0.25) == ""
    assert keyboard.gone
    assert keys.read(0.25) == ""
    assert slept == [0.25]


class FakeTerm:
    def __init__(self, height: int = 0, width: int = 0) -> None:
        self.stream = io.StringIO()
        self.height = height
        self.width = width
        self.normal = "\x1b[m\x0f$<2>"
        self.reverse = "\x1b[7m$<2>"
        self.bold = "\x1b[1m$<2>"
        self.home = "\x1b[H"
        self.clear = "\x1b[H\x1b[J$<50>"
        self.is_a_tty = True

    def move_yx(self, y: int, x: int) -> str:
        return f"\x1b[{y + 1};{x + 1}H$<5>"


def test_capabilities_lose_curses_padding() -> None:
    term = FakeTerm()
    assert app.cap(term, "clear") == "\x1b[H\x1b[J"
    assert app.cap(term, "move_yx", 2, 3) == "\x1b[3;4H"
    assert app.cap(term, "no_such_capability") == ""
    assert app.addressable(term)


def test_size_falls_back_for_a_serial_line_that_says_0x0() -> None:
    assert app.terminal_size(FakeTerm(0, 0), MenuSettings()) == Size(24, 80)
    assert app.terminal_size(FakeTerm(0, 0), MenuSettings(rows=40, cols=100)) == Size(40, 100)
    assert app.terminal_size(FakeTerm(50, 160), MenuSettings()) == Size(50, 160)
    assert app.terminal_size(FakeTerm(50, 160), MenuSettings(rows=30)) == Size(30, 160)


def test_settings_from_the_console_config() -> None:
    from bootagent.config import Console, Tristate

    serial = MenuSettings.from_console(Console(), serial=True, term="vt220")
    assert (serial.ascii, serial.color, serial.timeout, serial.line_mode) == (True, False, 10, False)
    local = MenuSettings.from_console(Console(), serial=False, term="linux", timeout=0, rows=30)
    assert (local.ascii, local.color, local.timeout, local.rows) == (False, True, 0, 30)
    forced = MenuSettings.from_console(
        Console(ascii=Tristate.OFF, color=Tristate.ON, allow_shell=False), serial=True, term="vt100"
    )
    assert (forced.ascii, forced.color, forced.allow_shell) == (False, True, False)
    latin = MenuSettings.from_console(
        Console(ascii=Tristate.OFF), serial=False, term="xterm", encoding="latin-1"
    )
    assert latin.ascii
    assert MenuSettings.from_console(Console(), serial=False, term="dumb").line_mode
    assert MenuSettings.from_console(Console(), serial=False, term=None).line_mode


# --- in a pty ------------------------------------------------------------------------------------------
@pytest.fixture
def spawn(tmp_path: Path) -> Any:
    made: list[MenuProcess] = []

    def start(*args: str, **kw: Any) -> MenuProcess:
        proc = MenuProcess(tmp_path, *args, **kw)
        made.append(proc)
        return proc

    yield start
    for proc in made:
        proc.close()


def assert_clean_screen(p: MenuProcess) -> None:
    assert "$<" not in p.raw.decode("utf-8", "replace"), "curses padding printed literally"
    assert b"\x1bP+q" not in p.raw, "a terminal query was sent"
    assert b"\x1b[6n" not in p.raw, "a cursor position query was sent"


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_navigate_expand_and_boot_a_snapshot(spawn: Any, blessed: str) -> None:
    p = spawn("--timeout", "30", term="vt220", blessed=blessed)
    p.wait_for("Booting beta in 30 s")
    assert p.selected().startswith(">   2   + beta")
    p.send("j")
    p.wait_gone("Booting beta in")  # any key stops the countdown
    assert p.selected().startswith(">   3   + gamma")
    p.send(UP)
    p.wait_for(">   2   + beta")
    p.send(RIGHT)  # expand beta
    p.wait_for("`- @s3")
    p.send(SS3_DOWN)
    p.wait_for(">   3     |- @s1")
    p.send(ESC, settle=0.05)  # an ESC sequence split across reads
    p.send("[B")
    p.wait_for(">   4     |- @s2")
    p.send(SS3_UP + "j")
    p.wait_for(">   4     |- @s2")
    p.send("1")
    p.wait_for(">   1   + alpha")
    p.send("5" + ENTER)
    p.wait_for(">   5     `- @s3")
    p.send("k" + "-")  # collapse goes back to beta
    p.wait_for(">   2   + beta")
    p.send("+jj" + "s")
    p.wait_for("The snapshot itself is never modified")
    p.send("n")
    p.wait_for("cancelled; nothing was changed")
    p.send("s")
    p.wait_for("Boot snapshot beta@s2")
    p.send("y")
    result = p.result()
    assert result["exit"] == "boot"
    assert result["decision"]["environment"] == "beta-s2"
    assert result["calls"] == [{"op": "boot_snapshot", "snapshot": "beta@s2"}]
    assert result["info"]["blessed"] == ("1.19.1" if blessed == "debian" else "1.52.0")
    assert_clean_screen(p)


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_rollback_confirmations_on_vt100(spawn: Any, blessed: str) -> None:
    p = spawn(term="vt100", blessed=blessed)
    p.wait_for(">   2   + beta")
    p.send("r")
    p.wait_for("Roll back beta: how many steps back?")
    p.send("2")
    p.wait_for(">   2  beta@s2")
    p.send("D")
    p.wait_for("Type ROLLBACK and press Enter")
    p.send("ROLLBAK" + ENTER)  # the wrong word cancels
    p.wait_for("cancelled: 'ROLLBAK' is not ROLLBACK; nothing was changed")
    p.send("r2D")
    p.wait_for("Type ROLLBACK and press Enter")
    p.send("ROLLBACK")
    p.wait_for("> ROLLBACK_")
    p.send(ENTER)
    p.wait_for("beta was rolled back in place to beta@s2; destroyed: s3")
    p.send("r")
    p.wait_for(">   1  beta@s2")
    p.send(ENTER)  # non-destructive: a new environment
    p.wait_for("the new environment beta-s2 is now the default")
    p.wait_for(">   4     beta-s2")
    p.send("f")
    p.wait_for("Roll beta-s2 forward")
    p.send("y")
    p.wait_for("rolled forward")
    p.send("R")
    p.wait_for("Reboot?")
    p.send("y")
    result = p.result()
    assert result["exit"] == "reboot"
    assert result["calls"] == [
        {"op": "rollback", "environment": "beta", "steps": 2, "destructive": True},
        {"op": "rollback", "environment": "beta", "steps": 1, "destructive": False},
        {"op": "roll_forward", "environment": "beta-s2", "steps": None},
    ]
    assert_clean_screen(p)


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_countdown_expiry_boots_the_default_on_linux(spawn: Any, blessed: str) -> None:
    p = spawn("--timeout", "2", "--unicode", "--color", term="linux", blessed=blessed)
    p.wait_for("Booting beta in 2 s", timeout=30)  # the first frame came while 2 s were left
    p.wait_for("Booting beta in 1 s")
    result = p.result()
    assert result["exit"] == "boot"
    assert result["decision"]["environment"] == "beta"
    assert result["calls"] == [{"op": "boot", "environment": "beta"}]
    assert_no_terminal_queries(p)
    assert "▸ alpha" in p.raw.decode()
    assert_clean_screen(p)


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_help_journal_disabled_shell_and_session_errors_on_xterm(spawn: Any, blessed: str) -> None:
    p = spawn("--no-shell", "--fail", "boot", "--crash", "rollback", term="xterm", blessed=blessed)
    p.wait_for(">   2   + beta")
    p.send("?")
    p.wait_for("Keys (single keys work where arrow keys do not arrive")
    p.wait_for("a recovery shell  [disabled by configuration]")
    p.send(" ")  # scroll
    p.wait_for("Ctrl-L")
    p.send("q")
    p.wait_for("Enter=boot")
    p.send("!")
    p.wait_for("error: shell: disabled by configuration (console.allow_shell)")
    p.send(ENTER)
    p.wait_for("error: booting beta failed: boot refused by the test")
    p.wait_for("hint: try another")
    p.send("r" + ENTER)
    p.wait_for("internal error: ZeroDivisionError: rollback crashed in the test")
    p.send("l")
    p.wait_for("The journal is empty.")
    p.send("q" + CTRL_L)
    p.wait_for("Enter=boot")
    p.send(ENTER)  # the second boot works: errors never end the menu
    result = p.result()
    assert result["exit"] == "boot"
    assert [c["op"] for c in result["calls"]] == ["boot", "rollback", "boot"]
    assert_clean_screen(p)


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_sizes_wide_and_unknown_with_a_slow_call(spawn: Any, blessed: str) -> None:
    wide = spawn(term="xterm", blessed=blessed, rows=43, cols=132)
    wide.wait_for("|dataset: rpool/ROOT/beta")
    assert wide.row_of("|dataset: rpool/ROOT/beta") == 2
    assert wide.lines[42].startswith(" Enter=boot")
    wide.send("P")
    wide.wait_for("Power off?")
    wide.send("y")
    assert wide.result()["exit"] == "poweroff"

    serial = spawn(
        "--delay", "1.2", "--serial", term="vt220", blessed=blessed, rows=0, cols=0, screen=(24, 80)
    )
    serial.wait_for("-- details ---")
    assert serial.lines[0].startswith(" bootagent boot menu")
    assert serial.lines[23].startswith(" Enter=boot")
    serial.send("r" + ENTER)
    serial.wait_for("rolling beta back 1 step(s) to beta@s3")
    serial.wait_for("importing the pool read-write")  # the latest Progress message
    serial.wait_for("beta-s3 is now the default", timeout=5)
    serial.send(CTRL_L)
    serial.wait_for(">   4     beta-s3")
    serial.send("R" + "y")
    result = serial.result()
    assert result["exit"] == "reboot"
    assert_clean_screen(serial)


# Pieces of what a serial line may carry besides keys: escape sequences cut short, CSI/SS3/DCS/OSC openers,
# 8-bit C1 controls, bytes that are no UTF-8, flow control, NUL, the signal characters (keys in raw mode).
FRAGMENTS = [
    b"\x1b[",
    b"\x1bO",
    b"\x1b[1;",
    b"\x1b[2",
    b"\x1b[200~",
    b"\x1b[<0;1",
    b"\x1b[M",
    b"\x1bP",
    b"\x1b]0;",
    b"\x1b\x1b",
    b"\x1b\xff",
    b"\x9b",
    b"\x8fA",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
    b"\xc3\xa9",
    b"\x00",
    b"\x11",
    b"\x13",
    b"\x03",
    b"\x04",
    b"\x1a",
    b"\x1c",
    b"\x7f",
]
KEYS = [
    *"jkgG+-rDfl?hqynRP0123456789 ROLLBACKsbxzZ!",
    ENTER,
    ESC,
    UP,
    DOWN,
    RIGHT,
    SS3_UP,
    "\x1b[2~",
    CTRL_L,
]


def noise(rng: random.Random, count: int) -> bytes:
    """`count` pieces: keys, random bytes, fragments; every byte value 0x00-0xff among them."""
    every = list(range(256))
    rng.shuffle(every)
    pieces: list[bytes] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.3:
            pieces.append(bytes([rng.randrange(256)]))
        elif roll < 0.45:
            pieces.append(rng.choice(FRAGMENTS))
        else:
            pieces.append(rng.choice(KEYS).encode())
        if every and rng.random() < 0.15:
            pieces.append(bytes([every.pop()]))
    pieces.append(bytes(every))
    return b"".join(pieces)


F12 = "\x1b[24~"  # a key the noise never sends: the mark of its end


def drain(p: MenuProcess) -> None:
    """Until the child has read every byte sent before (its log shows the mark that follows them; a backlog
    of a pty buffer of bytes may take a while on a loaded machine), then back to the main screen."""
    for _ in range(60):
        p.send(F12, settle=1.0)  # again and again: a menu that ends and starts again may drop input
        if "[24~'" in p.log():
            break
    else:
        raise AssertionError(f"the menu does not read its input:\n{p.text}\nlog:\n{p.log()[-3000:]}")
    for _ in range(10):
        p.send(ESC + "qq", settle=0.5)
        if " Enter=boot" in p.lines[-1]:
            return
    raise AssertionError(f"the menu does not answer:\n{p.text}\nlog:\n{p.log()[-3000:]}")


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_random_bytes_never_crash_and_never_destroy(spawn: Any, blessed: str) -> None:
    rng = random.Random(4242)
    data = noise(rng, 3000)
    assert set(data) == set(range(256))
    assert b"ROLLBACK" not in data  # so no destructive rollback may happen at all
    # booting is refused and the shell is off, so that few keys end the menu (reboot and power off still
    # do, after a y): the bytes reach the menu itself, not the cooked terminal between two runs
    refused = ("--refuse", "boot", "--refuse", "boot_snapshot", "--no-shell")
    p = spawn("--loop", "--debug", *refused, "--esc-delay", "0.05", term="vt220", blessed=blessed)
    p.wait_for("Enter=boot")
    for i in range(0, len(data), 32):
        p.send(data[i : i + 32], settle=0.01)
    drain(p)  # alive, and answering
    p.stop_loop()
    p.send("P")
    p.wait_for("Press y to power off now", timeout=10)
    p.send("y")
    result = p.result(timeout=30)
    assert [c for c in result["calls"] if c.get("destructive")] == []
    runs = result["info"]["runs"]
    assert runs[-1] == "poweroff"
    assert set(runs) <= {"reboot", "poweroff"}
    assert result["info"]["errors"] == []
    log = p.log()
    assert "Traceback" not in log
    assert "the menu loop failed" not in log
    keys = [line for line in log.splitlines() if line.startswith("DEBUG:bootagent.tui.app:key ")]
    assert sum("\ufffd" in line for line in keys) >= 50  # bytes that are no text did reach the menu


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_bytes_that_are_no_text_stop_the_countdown(spawn: Any, blessed: str) -> None:
    p = spawn("--timeout", "30", "--debug", term="vt220", blessed=blessed)
    p.wait_for("Booting beta in 30 s")
    p.send(b"\xff")
    p.wait_gone("Booting beta in")
    p.wait_for("ignored input that is not text")
    p.send("j")
    p.wait_for(">   3   + gamma")
    p.send("q")  # q clears the message
    p.wait_gone("ignored input that is not text")
    p.send(b"\xc3")  # the start of a character, and nothing after it
    p.wait_for("ignored input that is not text")
    p.send(b"\xc3\xa9k")  # a whole one is a key like another
    p.wait_for(">   2   + beta")
    p.send(b"\x00\x13\x11\x9b\x80\x1a\x04")
    p.send("P")
    p.wait_for("Press y to power off now")
    p.send("y")
    result = p.result()
    assert result["exit"] == "poweroff"
    assert result["calls"] == []
    assert "Traceback" not in p.log()


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_typed_word_is_cancelled_by_arrows_and_ctrl_c(spawn: Any, blessed: str) -> None:
    p = spawn(term="vt220", blessed=blessed, rows=10, cols=40)
    p.wait_for(">   2   + beta")
    for intruder in (UP, "\x03", ESC, b"\xff"):
        p.send("rD")
        p.wait_for("Type ROLLBACK and press Enter to go")
        p.send("ROLL")
        p.wait_for("> ROLL_")  # the echo is on the smallest screen too
        p.send(intruder, settle=0.5)
        p.wait_for("cancelled; nothing was changed")
        p.send("BACK", settle=0.3)  # the rest of the word lands on the main screen, where it does nothing
        assert "Type ROLLBACK" not in p.text
    p.send("P")
    p.wait_for("Press y to power off now")
    p.send("y")
    result = p.result()
    assert result["exit"] == "poweroff"
    assert [c for c in result["calls"] if c["op"] == "rollback"] == []


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["debian", "pypi", "lines"])
def test_hang_up_during_the_countdown_boots_the_default_cheaply(spawn: Any, mode: str) -> None:
    lines = ["--lines"] if mode == "lines" else []
    blessed = "pypi" if mode == "pypi" else "debian"
    p = spawn("--timeout", "5", "--debug", *lines, term="vt220", blessed=blessed)
    p.wait_for("Booting beta in 5 s")
    before = p.cpu_seconds()
    p.hang_up()  # the far end of the serial line is gone: reads return 0 bytes, writes fail
    result = p.result(timeout=30)
    assert result["exit"] == "boot"  # at the countdown's end, as it would have
    assert result["decision"]["environment"] == "beta"
    assert result["calls"] == [{"op": "boot", "environment": "beta"}]
    cpu = result["info"]["cpu_seconds"] - before
    assert cpu < 1.0, f"{cpu:.2f} s of CPU while nobody was there (a busy loop?)"
    log = p.log()
    assert "Traceback" not in log
    assert "end of input" in log


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["debian", "pypi", "lines"])
def test_hang_up_without_a_countdown_waits_cheaply(spawn: Any, mode: str) -> None:
    lines = ["--lines", "--no-shell"] if mode == "lines" else ["--no-shell"]
    p = spawn(*lines, "--debug", term="vt220", blessed="pypi" if mode == "pypi" else "debian")
    p.wait_for("Enter=boot" if mode != "lines" else "[number | Enter=boot")
    before = p.cpu_seconds()
    p.hang_up()
    for _ in range(30):  # a few seconds of nobody being there
        time.sleep(0.1)
        assert p.proc.poll() is None, p.stderr()  # nothing ends the menu: no boot, no reboot
    cpu = p.cpu_seconds() - before
    assert cpu < 0.6, f"{cpu:.2f} s of CPU while nobody was there (a busy loop?)"
    log = p.log()
    assert "end of input" in log
    assert "Traceback" not in log


# What blessed 1.5x asks a terminal (XTGETTCAP, XTVERSION, device attributes, cursor position): on a serial
# console nothing answers, and each question would hold the first frame back for its timeout.
TERMINAL_QUERIES = (b"\x1bP+q", b"\x1b[>q", b"\x1b[>0q", b"\x1b[c", b"\x1b[>c", b"\x1b[6n", b"\x1b[?u")


def assert_no_terminal_queries(p: Any) -> None:
    asked = [q for q in TERMINAL_QUERIES if q in p.raw]
    assert not asked, f"the menu asked the terminal {asked!r}"


@pytest.mark.subprocess
def test_time_to_first_frame_on_a_silent_pty(spawn: Any) -> None:
    """No terminal answers on a serial console: neither blessed may wait for one."""
    for blessed in BLESSED:
        p = spawn("--timeout", "30", term="vt220", blessed=blessed, rows=0, cols=0, screen=(24, 80))
        p.wait_for("Booting beta in 30 s", timeout=60)  # drawn with the whole countdown still to go
        assert_no_terminal_queries(p)
        p.send("P")
        p.send("y")
        assert p.result()["exit"] == "poweroff"
        assert_clean_screen(p)


# --- the factory reset ----------------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_keep_data_reset_lists_what_goes_and_asks_for_its_word(spawn: Any, blessed: str) -> None:
    p = spawn("--seal", term="vt100", blessed=blessed)
    p.wait_for(">   2   + beta")
    p.send("F")
    p.wait_for("Factory reset: keep the customer's data (baseline r1)")
    p.wait_for("RESTORE rpool/config")
    p.wait_for("Type RESET and press Enter")
    p.send("ERASE" + ENTER)  # the other mode's word is not this one's
    p.wait_for("cancelled: 'ERASE' is not RESET; nothing was changed")
    p.send("F")
    p.wait_for("Type RESET and press Enter")
    p.send("RESET" + ENTER)
    result = p.result()
    assert result["exit"] == "reset"  # the agent carries it out on the plain console, a line per step
    assert result["reset"]["mode"] == "keep-data"
    assert result["reset"]["new_environment"].startswith("factory-r1-")
    assert [c["op"] for c in result["calls"]] == ["plan_reset", "plan_reset"]


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_grubs_erase_entry_opens_on_its_confirmation_behind_the_password(spawn: Any, blessed: str) -> None:
    p = spawn(
        "--seal",
        "--password",
        "s3cret",
        "--start-reset",
        "erase-all",
        "--rows",
        "24",
        "--cols",
        "80",
        term="vt220",
        blessed=blessed,
    )
    p.wait_for("Password for the factory reset (erase-all)")
    p.send("wrong" + ENTER)
    p.wait_for("cancelled: wrong password; nothing was changed")
    assert b"wrong" not in p.raw.split(b"Password for")[-1].split(b"cancelled")[0]  # never echoed
    p.send("E")
    p.wait_for("Password for the factory reset (erase-all)")
    p.send("s3cret")
    p.wait_for("> ******_")
    p.send(ENTER)
    p.wait_for("Factory reset: ERASE EVERYTHING (baseline r1)")
    p.wait_for("Type ERASE and press Enter")
    p.send("ERASE" + ENTER)
    result = p.result()
    assert result["exit"] == "reset"
    assert result["reset"]["mode"] == "erase-all"
    assert [c["op"] for c in result["calls"]] == ["plan_reset"]


@pytest.mark.subprocess
def test_the_shell_asks_for_the_password_too(spawn: Any) -> None:
    p = spawn("--password", "s3cret", term="vt220", blessed="debian")
    p.wait_for(">   2   + beta")
    p.send("!")
    p.wait_for("Password for the shell")
    p.send("s3cret" + ENTER)
    assert p.result()["exit"] == "shell"


@pytest.mark.subprocess
def test_without_a_baseline_the_reset_says_how_to_make_one(spawn: Any) -> None:
    p = spawn(term="vt220", blessed="debian")
    p.wait_for(">   2   + beta")
    p.send("E")
    p.wait_for("there is no complete")
    p.wait_for("bootagent factory seal")
    p.send("P")
    p.wait_for("Press y to power off now")
    p.send("y")
    assert [c["op"] for c in p.result()["calls"]] == ["plan_reset"]
