"""The blessed loop: key decoding and painting in-process; the whole menu in a pty, as a person uses it,
under Debian's blessed 1.19 and PyPI's blessed, on several TERM values and sizes."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path
from typing import Any

import pytest

from bootagent.tui import app
from bootagent.tui import state as S
from bootagent.tui.render import Line, Size, Style
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


def test_ss3_arrows_are_joined_for_both_blessed_versions() -> None:
    # 1.19 on TERM=linux: ESC, 'O', 'B'; 1.5x: ESC-O (Alt-Shift-O), 'B'
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("O"), Key("B"))) == [S.DOWN]
    assert read_all(reader(Key("\x1bO", "KEY_ALT_SHIFT_O"), Key("A"))) == [S.UP]
    assert read_all(reader(Key("\x1bO", "KEY_ALT_SHIFT_O"), Key("x"))) == ["KEY_UNKNOWN", "x"]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("q"))) == [S.ESC, "q"]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"))) == [S.ESC]
    assert read_all(reader(Key("\x1b", "KEY_ESCAPE"), Key("O"))) == ["KEY_UNKNOWN"]  # Alt-O


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


def test_painter_rewrites_only_changed_lines() -> None:
    term = FakeTerm()
    painter = app.Painter(term, MenuSettings())
    first = [Line("aaaa"), Line("bbbb", Style.SELECTED), Line("cccc")]
    painter.paint(first, Size(3, 4))
    out = term.stream.getvalue()
    assert "$<" not in out
    assert out.startswith("\x1b[m\x0f\x1b[H\x1b[H\x1b[J")  # a full paint first
    assert "\x1b[2;1H\x1b[7mbbbb\x1b[m\x0f" in out
    assert out.endswith("\x1b[3;1Hccc")  # never the bottom-right cell
    term.stream.seek(0)
    term.stream.truncate()
    painter.paint([Line("aaaa"), Line("bbbb"), Line("cccc")], Size(3, 4))
    assert term.stream.getvalue() == "\x1b[2;1Hbbbb"
    term.stream.seek(0)
    term.stream.truncate()
    painter.paint([Line("aaaa"), Line("bbbb"), Line("cccc")], Size(3, 4))
    assert term.stream.getvalue() == ""  # nothing changed, nothing sent
    painter.invalidate()
    painter.paint([Line("aaaa"), Line("bbbb"), Line("cccc")], Size(3, 4))
    assert "\x1b[J" in term.stream.getvalue()


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
    p.wait_for("Roll back beta: pick how many steps back")
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
    first = p.wait_for("Booting beta in 2 s", timeout=3)
    assert first < 2.0, f"first frame after {first:.2f} s"
    p.wait_for("Booting beta in 1 s")
    result = p.result()
    assert result["exit"] == "boot"
    assert result["decision"]["environment"] == "beta"
    assert result["calls"] == [{"op": "boot", "environment": "beta"}]
    assert result["info"]["terminal_seconds"] < 0.5
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


@pytest.mark.subprocess
@pytest.mark.parametrize("blessed", BLESSED)
def test_random_keys_never_crash_and_never_destroy(spawn: Any, blessed: str) -> None:
    rng = random.Random(4242)
    alphabet = [
        *"jkgG+-rDfl?hqynRP0123456789 ROLLBACKsbxzZ!",
        ENTER,
        ESC,
        UP,
        DOWN,
        RIGHT,
        SS3_UP,
        "\x1b[",
        "\x1bO",
        "\x1b[2~",
        "\x7f",
        "\x03",
        CTRL_L,
    ]
    keys = [rng.choice(alphabet) for _ in range(3000)]
    stream = "".join(keys)
    assert "ROLLBACK" not in stream
    p = spawn("--loop", "--esc-delay", "0.05", term="vt220", blessed=blessed)
    p.wait_for("Enter=boot")
    for i in range(0, len(keys), 25):
        p.send("".join(keys[i : i + 25]), settle=0.01)
    p.send("", settle=0.5)
    p.stop_loop()
    # leave whatever screen the keys ended on and power off; on a loaded machine the backlog of keys may still
    # be draining, so ask again until the confirmation is really on the screen
    for _ in range(10):
        p.send(ESC, settle=0.3)
        p.send("qq", settle=0.3)
        p.send("P", settle=0.5)
        if "Press y to power off now" in p.text:
            break
    p.wait_for("Press y to power off now", timeout=10)
    p.send("y")
    result = p.result(timeout=30)
    destructive = [c for c in result["calls"] if c.get("destructive")]
    assert destructive == []
    ops = [c["op"] for c in result["calls"]]
    boots = ops.count("boot") + ops.count("boot_snapshot")
    runs = result["info"]["runs"]
    assert len(runs) >= 2  # the menu was left and started again several times
    assert runs[-1] == "poweroff"
    assert boots >= sum(1 for r in runs if r.startswith("boot"))  # a boot call ends one run
    assert result["info"]["errors"] == []


@pytest.mark.subprocess
def test_time_to_first_frame_on_a_silent_pty(spawn: Any) -> None:
    """No terminal answers on a serial console: neither blessed may wait for one."""
    for blessed in BLESSED:
        started = time.monotonic()
        p = spawn("--timeout", "30", term="vt220", blessed=blessed, rows=0, cols=0, screen=(24, 80))
        p.wait_for("Booting beta in 30 s")
        assert time.monotonic() - started < 2.0
        p.send("P")
        p.send("y")
        assert p.result()["exit"] == "poweroff"
        assert_clean_screen(p)
