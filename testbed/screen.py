"""What a person at the serial console sees: the console's output played on an emulated 80x24 terminal.

The agent's menu writes only the cells that change (bootagent/tui/painter.py), so its texts are not in the
console's byte stream in one piece: `Machine.expect` reads them from the screen as well.

A screen shows old text until something overwrites it, so every row carries a stamp: the burst of output
(chunks less than BURST_GAP apart: one frame of the menu arrives as one burst) that last drew on it. A
row's stamp moves with it when the screen scrolls, and a cleared screen has none. `expect` accepts a
match only on a row drawn in the burst of the previous match or later: text left over from before (an old
menu above boot messages) is not taken for new. The screen is kept after every chunk that changes it, so
a text shown for a moment (a progress line) is seen; a search goes on from where it stopped. A text just
matched is found again for as long as it stays on the screen: a test that waits for the same text twice
waits for something else in between. The unit of "since" is the burst, not the byte: text drawn earlier
in the burst of the last match (a command's output before its end marker) still counts as new.

pyte is a test dependency (requirements-dev.txt); the image build, which runs on the system's Python,
never reads a screen.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

ROWS, COLS = 24, 80
BURST_GAP = 0.25  # seconds between chunks of output that begin a new burst


@dataclass(frozen=True)
class Snapshot:
    burst: int
    offset: int  # the console output's length (characters) once this screen was shown
    rows: tuple[str, ...]
    stamps: tuple[int, ...]  # per row: the burst that last drew on it (0: none since a clear)


def _stamped_screen() -> Any:
    import pyte

    class Stamped(pyte.Screen):
        def __init__(self, columns: int, lines: int) -> None:
            self.burst = 0
            self.scrolled = 0  # scrolls during the draw under way
            self.stamps = [0] * lines
            super().__init__(columns, lines)

        def draw(self, data: str) -> None:
            top = self.cursor.y
            self.scrolled = 0
            super().draw(data)  # a line that wraps at the bottom scrolls the screen on the way
            first = max(0, top - self.scrolled)
            for y in range(min(first, self.cursor.y), max(first, self.cursor.y) + 1):
                self.stamps[y] = self.burst

        def index(self) -> None:
            top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
            if self.cursor.y == bottom:  # the region scrolls up: the stamps go with the rows
                self.stamps[top : bottom + 1] = [*self.stamps[top + 1 : bottom + 1], 0]
                self.scrolled += 1
            super().index()

        def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
            super().erase_in_display(how, *args, **kwargs)
            if how == 2 or (how == 0 and self.cursor.y == 0 and self.cursor.x == 0):
                self.stamps = [0] * self.lines

        def reset(self) -> None:
            super().reset()
            self.stamps = [0] * self.lines

    return Stamped(COLS, ROWS)


class ConsoleScreen:
    """The console played on a terminal, with a snapshot of the screen after every chunk that changed it
    (a text the menu shows for a moment, a progress line, is in one of them). Positions of snapshots are
    absolute: they stay valid when older snapshots are forgotten."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        import pyte

        self.clock = clock
        self.screen = _stamped_screen()
        self.stream = pyte.Stream(self.screen)
        self.last_chunk = float("-inf")
        self.snapshots: list[Snapshot] = []
        self.dropped = 0  # snapshots forgotten before snapshots[0]
        self.mark = 0  # the burst of the last match: rows drawn before it are old

    def feed(self, text: str, offset: int) -> None:
        now = self.clock()
        if now - self.last_chunk > BURST_GAP:
            self.screen.burst += 1
        self.last_chunk = now
        self.stream.feed(text)
        if not self.screen.dirty:
            return
        self.screen.dirty.clear()
        snap = Snapshot(self.screen.burst, offset, tuple(self.screen.display), tuple(self.screen.stamps))
        last = self.snapshots[-1] if self.snapshots else None
        if last is None or (last.rows, last.stamps) != (snap.rows, snap.stamps):
            self.snapshots.append(snap)

    def power_cycle(self) -> None:
        """The machine starts again: what was on the screen, or passed over it, is old."""
        self.screen.reset()
        self.screen.dirty.clear()
        self.dropped += len(self.snapshots)
        self.snapshots = []
        self.mark = self.screen.burst + 1
        self.last_chunk = float("-inf")  # the next output begins that burst

    @property
    def start(self) -> int:
        """Where a new search begins: the snapshot of the last match (another text may be on it too)."""
        return self.dropped

    def search(
        self, regex: re.Pattern[str], start: int
    ) -> tuple[tuple[int, Snapshot, re.Match[str]] | None, int]:
        """The first snapshot from position `start` on that shows `regex` on a row drawn since the last
        match, as (position, snapshot, match); and the position to go on from."""
        first = max(start, self.dropped) - self.dropped
        for k in range(first, len(self.snapshots)):
            snap = self.snapshots[k]
            for row, stamp in zip(snap.rows, snap.stamps, strict=True):
                if stamp >= self.mark and stamp > 0:
                    match = regex.search(row)
                    if match:
                        return (self.dropped + k, snap, match), self.dropped + k + 1
        return None, self.dropped + len(self.snapshots)

    def matched_at(self, position: int) -> None:
        """A match on the snapshot at `position`: everything before it is forgotten."""
        keep = max(0, position - self.dropped)
        self.dropped += keep
        self.snapshots = self.snapshots[keep:]
        self.mark = max(self.mark, self.snapshots[0].burst if self.snapshots else self.screen.burst)

    def matched_offset(self, offset: int) -> None:
        """A match in the byte stream ending at `offset`: the screens before it are forgotten."""
        k = next((k for k, s in enumerate(self.snapshots) if s.offset >= offset), len(self.snapshots))
        self.matched_at(self.dropped + k)

    def offset_at(self, position: int) -> int:
        return self.snapshots[position - self.dropped].offset

    def text(self) -> str:
        return "\n".join(self.screen.display)
