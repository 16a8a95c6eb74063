"""The painter: what it writes, read back through a terminal emulator (pyte), is exactly the frame."""

from __future__ import annotations

import io
import os
import random
import termios
from pathlib import Path
from typing import Any

import blessed
import pyte
import pytest

from bootagent.tui import app
from bootagent.tui.painter import LinePace, Piece, line_pieces, line_speed
from bootagent.tui.render import Glyphs, Line, Size, Style, cells_of, list_height, render
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.fake_session import FakeSession

STYLED = {Style.SELECTED, Style.STATUS, Style.TITLE}  # reverse video on vt100


class TtyText(io.StringIO):
    def isatty(self) -> bool:
        return True


class Screen:
    """A painter on a vt100 blessed terminal whose output goes into a pyte screen."""

    def __init__(self, rows: int = 24, cols: int = 80, *, kind: str = "vt100") -> None:
        self.out = TtyText()
        self.term = blessed.Terminal(kind=kind, stream=self.out, force_styling=True)
        self.painter = app.painter_for(self.term, MenuSettings(term=kind))
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.size = Size(rows, cols)

    def paint(self, frame: list[Line]) -> str:
        self.painter.paint(frame, self.size)
        out = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        self.stream.feed(out)
        return out

    def check(self, frame: list[Line]) -> None:
        """The screen shows the frame, cell by cell, with reverse video exactly on the styled cells
        (the bottom-right cell is never written)."""
        rows, cols = self.size.rows, self.size.cols
        for y, line in enumerate(frame):
            shown, want = cells_of(self.screen.display[y]), cells_of(line.text)
            if y == rows - 1:
                shown, want = shown[: cols - 1], want[: cols - 1]
            assert shown == want, f"row {y}: {''.join(shown)!r} != {''.join(want)!r}"
            styled = cols if line.styled is None else line.styled
            if 0 < styled < cols and cells_of(line.text)[styled] == "":
                styled += 1  # both cells of a wide character
            for x in range(cols - 1 if y == rows - 1 else cols):
                reverse = self.screen.buffer[y][x].reverse
                assert reverse == (line.style in STYLED and x < styled), f"row {y} col {x}: reverse {reverse}"


def menu_frames(tmp_path: Path, keys: str, rows: int = 24, cols: int = 80) -> list[list[Line]]:
    session = FakeSession(tmp_path)
    settings = MenuSettings(timeout=0, ascii=True, serial=True, term="vt100")
    state = app.initial_state(session, settings, 0.0)
    size = Size(rows, cols)

    def frame() -> list[Line]:
        state.page, state.width, state.now = list_height(size), size.cols, 0.0
        return render(state, size, Glyphs.for_settings(True), ascii_only=True)

    frames = [frame()]
    for key in keys:
        state.handle(key)
        frames.append(frame())
    return frames


def test_a_move_on_vt100_at_80x24_writes_the_marker_the_names_and_the_details(tmp_path: Path) -> None:
    frames = menu_frames(tmp_path, "jkj")
    screen = Screen()
    full = screen.paint(frames[0])
    screen.check(frames[0])
    assert full.startswith("\x1b[m\x0f\x1b[H\x1b[H\x1b[J") or "\x1b[J" in full[:20]
    assert len(full) < 1000  # blank cells after a clear are not written again (2,127 bytes with them)
    for frame in frames[1:]:
        out = screen.paint(frame)
        screen.check(frame)
        assert 0 < len(out) <= 200, repr(out)
    assert screen.paint(frames[-1]) == ""  # nothing changed, nothing sent


def test_repaint_after_invalidate_and_a_new_size(tmp_path: Path) -> None:
    frames = menu_frames(tmp_path, "j")
    screen = Screen()
    screen.paint(frames[0])
    screen.painter.invalidate()
    assert "\x1b[J" in screen.paint(frames[1])
    screen.check(frames[1])
    small = menu_frames(tmp_path, "", rows=12, cols=50)[0]
    screen.size = Size(12, 50)
    screen.screen.resize(12, 50)
    assert "\x1b[J" in screen.paint(small)
    screen.check(small)


def _random_line(rng: random.Random, cols: int, alphabet: str) -> Line:
    parts: list[str] = []
    width = 0
    while width < cols:
        if rng.random() < 0.3:
            run = " " * rng.randint(1, 12)
        else:
            run = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        for ch in run:
            w = 2 if ch in "日本" else 1
            if width + w > cols:
                break
            parts.append(ch)
            width += w
        else:
            continue
        break
    text = "".join(parts) + " " * (cols - width)
    style = rng.choice(list(Style))
    styled = rng.choice([None, 0, rng.randint(1, cols)])
    return Line(text, Style(style), styled)


@pytest.mark.parametrize("alphabet", ["abcxyz-|>", "abc日本é"])
def test_any_sequence_of_frames_ends_on_the_screen_exactly(alphabet: str) -> None:
    rng = random.Random(7)
    rows, cols = 8, 30
    screen = Screen(rows, cols)
    # the bottom row stays narrow: its last cell is never written, and pyte (unlike a terminal) does not
    # blank the second half of a wide character whose first half was overwritten
    alphabets = [alphabet] * (rows - 1) + ["abc-"]
    frame = [_random_line(rng, cols, alphabets[y]) for y in range(rows)]
    for _ in range(300):
        frame = [
            _random_line(rng, cols, alphabets[y]) if rng.random() < 0.4 else line
            for y, line in enumerate(frame)
        ]
        if rng.random() < 0.3:  # a few cells of one line change, the rest stays
            y = rng.randrange(rows)
            cells = list(frame[y].text)
            if all(ch not in "日本" for ch in cells):
                x = rng.randrange(cols)
                cells[x] = rng.choice("abc ")
                frame[y] = Line("".join(cells), frame[y].style, frame[y].styled)
        screen.paint(frame)
        screen.check(frame)


def test_pieces_merge_close_runs_and_erase_only_outside_a_style() -> None:
    old = Line("abcdefghij" + " " * 20)
    new = Line("aXcdeYghij" + " " * 20)
    assert line_pieces(0, old, new, 30, move_cost=6, erase_cost=3, last=False) == [Piece(0, 1, "XcdeY")]
    assert line_pieces(0, old, new, 30, move_cost=2, erase_cost=3, last=False) == [
        Piece(0, 1, "X"),
        Piece(0, 5, "Y"),
    ]
    shorter = Line("abc" + " " * 27)
    assert line_pieces(0, old, shorter, 30, move_cost=6, erase_cost=3, last=False) == [
        Piece(0, 3, "", erase=True)
    ]
    assert line_pieces(0, old, shorter, 30, move_cost=6, erase_cost=None, last=False) == [
        Piece(0, 3, " " * 7)
    ]
    bar = Line("abc" + " " * 27, Style.SELECTED)  # reverse video to the end: spaces, not an erase
    pieces = line_pieces(0, old, bar, 30, move_cost=6, erase_cost=3, last=False)
    assert pieces == [Piece(0, 0, bar.text, Style.SELECTED)]
    assert line_pieces(0, None, Line("a" + " " * 29), 30, move_cost=6, erase_cost=3, last=True) == [
        Piece(0, 0, "a")
    ]
    assert line_pieces(0, None, Line(" " * 29 + "z"), 30, move_cost=6, erase_cost=3, last=True) == []


def test_a_wide_character_is_never_cut_in_half() -> None:
    old = Line("ab日cd" + " " * 4)
    new = Line("ab本cd" + " " * 4)
    assert line_pieces(0, old, new, 10, move_cost=0, erase_cost=3, last=False) == [Piece(0, 2, "本")]


def test_line_pace_counts_the_line_s_time() -> None:
    now = [100.0]
    pace = LinePace(9600, clock=lambda: now[0])
    assert pace.behind() == 0.0
    pace.sent(960)
    assert pace.behind() == pytest.approx(1.0)
    pace.sent(480)  # queued behind the first
    assert pace.behind() == pytest.approx(1.5)
    now[0] += 2.0
    assert pace.behind() == 0.0
    assert LinePace(None).behind() == 0.0


def test_line_speed_is_the_kernel_s() -> None:
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B9600
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        assert line_speed(slave) == 9600
        r, w = os.pipe()
        assert line_speed(r) is None  # a pipe is no terminal
        os.close(r)
        os.close(w)
        assert line_speed(None) is None
    finally:
        os.close(master)
        os.close(slave)


def test_a_serial_painter_is_paced_and_a_local_one_is_not(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B9600
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        stream: Any = os.fdopen(os.dup(slave), "w", encoding="utf-8")
        term = blessed.Terminal(kind="vt100", stream=stream, force_styling=True)
        now = [100.0]  # the clock stands still: a loaded machine must not make the line look idle
        serial = app.painter_for(term, MenuSettings(term="vt100", serial=True), clock=lambda: now[0])
        local = app.painter_for(term, MenuSettings(term="vt100", serial=False), clock=lambda: now[0])
        frame = menu_frames(tmp_path, "")[0]
        for painter in (serial, local):
            painter.paint(frame, Size(24, 80))
        assert serial.pace.behind() == pytest.approx(serial.bytes_written / 960)  # 9600 baud, 10 bits a byte
        assert serial.pace.behind() > 0.5  # ~850 bytes
        now[0] += 10
        assert serial.pace.behind() == 0.0  # gone out by now
        assert local.pace.behind() == 0.0
        stream.close()
    finally:
        os.close(master)
        os.close(slave)
