"""The console's screen: the agent's texts are found where the menu drew them, old text is not new."""

from __future__ import annotations

import io
import re
from pathlib import Path

import blessed

from testbed.screen import BURST_GAP, ConsoleScreen
from tests.unit.tui.fake_session import FakeSession


class TtyText(io.StringIO):
    def isatty(self) -> bool:
        return True


class Console:
    def __init__(self) -> None:
        self.now = 0.0
        self.screen = ConsoleScreen(clock=lambda: self.now)
        self.out = ""

    def burst(self, *chunks: str) -> None:
        """Chunks arriving together (one frame), after a pause."""
        self.now += BURST_GAP * 4
        for chunk in chunks:
            self.now += 0.01
            self.out += chunk
            self.screen.feed(chunk, len(self.out))

    def find(self, pattern: str) -> str | None:
        found, _ = self.screen.search(re.compile(pattern), self.screen.start)
        if found is None:
            return None
        position, _snap, match = found
        self.screen.matched_at(position)
        return match.group(0)


def test_text_written_in_pieces_is_found_on_the_screen() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[J\x1b[5;1HBoot \x1b[5;6Hsnapshot\x1b[5;14H beta@s2")
    assert "Boot snapshot beta@s2" not in c.out
    assert c.find(r"Boot snapshot beta@s2") == "Boot snapshot beta@s2"


def test_old_text_is_not_taken_for_new_until_it_is_drawn_again() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[Jbootagent boot menu\r\n")
    assert c.find("bootagent boot menu")
    c.burst("\x1b[10;1Hsomething else")
    assert c.find("something else")
    assert c.find("bootagent boot menu") is None  # still on the screen, but from before the last match
    c.burst("\x1b[1;1Hbootagent")  # the row is drawn again
    assert c.find("bootagent boot menu")


def test_two_texts_of_one_frame_are_both_found_one_after_the_other() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[J\x1b[3;1HFactory reset: keep", "\x1b[20;1HType RESET and press Enter")
    assert c.find("Factory reset")
    assert c.find("Type RESET")


def test_a_text_shown_for_a_moment_is_seen() -> None:
    """A progress line the next frame of the same burst replaces (the busy screen draws every 0.1 s)."""
    c = Console()
    c.burst("\x1b[H\x1b[J\x1b[5;1Hremoving rpool/ROOT/alpha", "\x1b[5;1Hfactory reset, step 4 of 9\x1b[K")
    assert c.find(r"removing rpool/ROOT/\S+") == "removing rpool/ROOT/alpha"
    assert c.find(r"factory reset, step 4 of \d+") == "factory reset, step 4 of 9"


def test_a_search_goes_on_from_where_it_stopped() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[Jone")
    regex = re.compile("two")
    found, position = c.screen.search(regex, c.screen.start)
    assert found is None
    c.burst("\x1b[2;1Htwo")
    found, _ = c.screen.search(regex, position)
    assert found is not None
    assert found[0] == position  # the first snapshot after the ones already looked at


def test_text_scrolled_up_by_boot_messages_stays_old() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[J\x1b[20;1HPress any key to stop the countdown")
    assert c.find("Press any key")
    c.burst("\x1b[24;1H" + "".join(f"[   {n}.0] kernel line\r\n" for n in range(5)))
    assert c.find(r"kernel line")
    assert "Press any key" in c.screen.text()  # scrolled up, still visible
    assert c.find("Press any key") is None


def test_a_line_that_wraps_at_the_bottom_is_new_on_both_its_rows() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[J\x1b[24;1Hold")
    assert c.find("old")
    c.burst("\r\n" + "begin of a long line " + "x" * 70)  # 91 characters: wraps, and the screen scrolls
    assert c.find("begin of a long line")


def test_a_cleared_screen_and_a_power_cycle_forget_everything() -> None:
    c = Console()
    c.burst("\x1b[H\x1b[Jhello")
    c.burst("\x1b[2;1Hother")
    assert c.find("other")
    c.burst("\x1b[H\x1b[J")
    assert c.find("hello") is None
    c.burst("hello again")  # seen, and then the machine starts again before anyone looked
    c.screen.power_cycle()
    assert c.find("hello") is None
    c.burst("hello, third time")
    assert c.find("hello") == "hello"


def test_the_menu_s_frames_read_back_from_the_screen(tmp_path: Path) -> None:
    """The real painter on vt100, as the agent draws over serial: every frame's text is found."""
    from bootagent.tui import app
    from bootagent.tui.render import Glyphs, Size, list_height, render
    from bootagent.tui.settings import MenuSettings
    from bootagent.tui.state import ENTER

    session = FakeSession(tmp_path)
    settings = MenuSettings(timeout=0, ascii=True, serial=True, term="vt100")
    out = TtyText()
    term = blessed.Terminal(kind="vt100", stream=out, force_styling=True)
    painter = app.painter_for(term, settings)
    state = app.initial_state(session, settings, 0.0)
    size = Size(24, 80)
    c = Console()
    for key in ["", "j", "k", "Enter"]:
        if key == "Enter":
            state.handle(ENTER)
        elif key:
            state.handle(key)
        state.page, state.width, state.now = list_height(size), size.cols, 0.0
        frame = render(state, size, Glyphs.for_settings(True), ascii_only=True)
        painter.paint(frame, size)
        c.burst(out.getvalue())
        out.seek(0)
        out.truncate()
        for line in frame[1:-1]:
            text = line.text.strip()
            if len(text) > 3:
                found, _ = c.screen.search(re.compile(re.escape(text)), c.screen.start)
                assert found is not None, (text, c.screen.text())
