"""What a person at the serial console sees: the console's output played on an emulated 80x24 terminal.

The agent's menu writes only the cells that change (bootagent/tui/painter.py), so its texts are not in the
console's byte stream in one piece: `Machine.expect` reads them from the screen as well.

A screen shows old text until something overwrites it, so every row carries a stamp: the burst of output
(chunks less than BURST_GAP apart: one frame of the menu arrives as one burst) that last drew on it. A
row's stamp moves with it when the screen scrolls, and a cleared screen has none. `expect` accepts a
match only on a row drawn in the burst of the previous match or later: text left over from before (an old
menu above boot messages) is not taken for new. A text just matched is found again for as long as it
stays on the screen: a test that waits for the same text twice waits for something else in between.

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
            self.stamps = [0] * lines
            super().__init__(columns, lines)

        def draw(self, data: str) -> None:
            top = self.cursor.y
            super().draw(data)
            for y in range(min(top, self.cursor.y), max(top, self.cursor.y) + 1):
                self.stamps[y] = self.burst

        def index(self) -> None:
            top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
            if self.cursor.y == bottom:  # the region scrolls up: the stamps go with the rows
                self.stamps[top : bottom + 1] = [*self.stamps[top + 1 : bottom + 1], 0]
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
    """The console played on a terminal, with a snapshot of the screen at the end of each burst."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        import pyte

        self.clock = clock
        self.screen = _stamped_screen()
        self.stream = pyte.Stream(self.screen)
        self.last_chunk = float("-inf")
        self.offset = 0
        self.fresh = False  # fed since the last snapshot
        self.snapshots: list[Snapshot] = []
        self.mark = 0  # the burst of the last match: rows drawn before it are old

    def feed(self, text: str, offset: int) -> None:
        now = self.clock()
        if now - self.last_chunk > BURST_GAP:
            self._keep()
            self.screen.burst += 1
        self.last_chunk = now
        self.stream.feed(text)
        self.offset = offset
        self.fresh = True

    def _now(self) -> Snapshot:
        return Snapshot(self.screen.burst, self.offset, tuple(self.screen.display), tuple(self.screen.stamps))

    def _keep(self) -> None:
        """The screen a burst ended on (what stayed on it until the next)."""
        if self.fresh:
            self.snapshots.append(self._now())
            self.fresh = False

    def power_cycle(self) -> None:
        """The machine starts again: what was on the screen, or passed over it, is old."""
        self.screen.reset()
        self.snapshots = []
        self.fresh = False
        self.mark = self.screen.burst + 1
        self.last_chunk = float("-inf")  # the next output begins that burst

    def search(self, regex: re.Pattern[str]) -> tuple[Snapshot, re.Match[str]] | None:
        """The first snapshot since the last match that shows `regex` on a row drawn since then."""
        for snap in [*self.snapshots, self._now()]:
            if snap.burst < self.mark:
                continue
            for row, stamp in zip(snap.rows, snap.stamps, strict=True):
                if stamp >= self.mark and stamp > 0:
                    match = regex.search(row)
                    if match:
                        return snap, match
        return None

    def matched(self, burst: int) -> None:
        """A match (on the screen or in the byte stream) in `burst`: forget what is older."""
        self.mark = max(self.mark, burst)
        self.snapshots = [s for s in self.snapshots if s.burst >= self.mark]

    def burst_at(self, offset: int) -> int:
        """The burst in which the console output reached `offset` characters."""
        for snap in self.snapshots:
            if snap.offset >= offset:
                return snap.burst
        burst: int = self.screen.burst
        return burst  # the burst under way

    def text(self) -> str:
        return "\n".join(self.screen.display)
