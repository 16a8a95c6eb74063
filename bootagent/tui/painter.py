"""Frames to a terminal in as few bytes as a slow serial line needs, and no faster than it carries them.

An IPMI serial-over-LAN console at 9600 baud moves 960 bytes a second. A frame is `rows` lines of exactly
`cols` cells (render.py); what goes out is only what differs from the frame before, cell by cell:

- each line is compared cell by cell (character and style); cells that differ are written in runs, and
  two runs closer together than a cursor move costs are one run (writing the cells between is cheaper);
- a line whose rest is blank ends with erase-to-end-of-line instead of spaces (never inside a style: on a
  terminal without back-colour-erase it would erase in reverse video);
- a repaint (the first frame, a new size, Ctrl-L) clears the screen and then writes only what is not blank;
- the bottom-right cell is never written (the terminal may scroll).

`LinePace` knows when the line will have carried what was written: on a serial console the menu draws the
next frame only then, and in the meantime reads the keys typed ahead, so that holding a key down never
leaves a queue of stale frames behind it (app.py). The line's speed is the one the kernel has for it
(termios); a terminal that is no serial line is not paced.
"""

from __future__ import annotations

import contextlib
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bootagent.tui.output import Output
from bootagent.tui.render import Line, Size, Style, cells_of

BITS_PER_BYTE = 10  # 8N1: a start bit, eight data bits, a stop bit


@dataclass(frozen=True)
class Piece:
    """Text to write at (row, col) in one style; `erase`: then erase to the end of the row."""

    row: int
    col: int
    text: str
    style: Style = Style.PLAIN
    erase: bool = False


def _cells(line: Line | None, cols: int) -> list[tuple[str, Style]]:
    """The line as `cols` (character, style) cells; a wide character's second cell is ("", style)."""
    if line is None:
        return [(" ", Style.PLAIN)] * cols
    chars = cells_of(line.text)[:cols]
    chars += [" "] * (cols - len(chars))
    styled = cols if line.styled is None else max(0, min(cols, line.styled))
    if 0 < styled < cols and chars[styled] == "":
        styled += 1  # a wide character is in one style, both its cells
    return [(ch, line.style if i < styled else Style.PLAIN) for i, ch in enumerate(chars)]


def line_pieces(
    row: int, old: Line | None, new: Line, cols: int, *, move_cost: int, erase_cost: int | None, last: bool
) -> list[Piece]:
    """What to write so that a row showing `old` (None: blank) shows `new`.

    `move_cost`: the bytes of a cursor move (gaps of unchanged cells up to this long are rewritten rather
    than jumped over); `erase_cost`: the bytes of erase-to-end-of-line, None when the terminal has none;
    `last`: the bottom row, whose last cell is never written."""
    before, after = _cells(old, cols), _cells(new, cols)
    end = cols - 1 if last else cols
    if last and end > 0 and after[end - 1][0] and end < cols and after[end][0] == "":
        end -= 1  # a wide character in the bottom-right corner: neither of its cells
    changed = [i for i in range(end) if before[i] != after[i]]
    if not changed:
        return []
    runs: list[list[int]] = []
    for i in changed:
        if runs and i - runs[-1][1] <= move_cost:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    for run in runs:  # never half of a wide character, old or new: a terminal erases the other half
        while run[0] > 0 and (after[run[0]][0] == "" or before[run[0]][0] == ""):
            run[0] -= 1
        while run[1] < end and (after[run[1]][0] == "" or before[run[1]][0] == ""):
            run[1] += 1
    merged: list[list[int]] = []
    for run in runs:  # widened runs may now touch
        if merged and run[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], run[1])
        else:
            merged.append(run)
    runs = merged
    blank = len(after)  # from here on the new row is plain spaces
    while blank > 0 and after[blank - 1] == (" ", Style.PLAIN):
        blank -= 1
    erase_from: int | None = None
    if erase_cost is not None and runs[-1][1] > blank:
        first = next(k for k, run in enumerate(runs) if run[1] > blank)
        start = max(runs[first][0], blank)
        if runs[-1][1] - start > erase_cost:  # cheaper than the spaces
            erase_from = start
            runs = runs[:first] + ([[runs[first][0], start]] if runs[first][0] < start else [])
    pieces: list[Piece] = []
    for a, b in runs:
        i = a
        while i < b:
            style = after[i][1]
            j = i
            while j < b and after[j][1] is style:
                j += 1
            pieces.append(Piece(row, i, "".join(ch for ch, _ in after[i:j]), style))
            i = j
    if erase_from is not None:
        pieces.append(Piece(row, erase_from, "", Style.PLAIN, erase=True))
    return pieces


def frame_pieces(
    previous: Sequence[Line] | None,
    frame: Sequence[Line],
    cols: int,
    *,
    move_cost: int,
    erase_cost: int | None,
) -> list[Piece]:
    """The pieces of every row of `frame` against `previous` (None: a blank screen)."""
    out: list[Piece] = []
    for row, line in enumerate(frame):
        old = previous[row] if previous is not None else None
        out += line_pieces(
            row, old, line, cols, move_cost=move_cost, erase_cost=erase_cost, last=row == len(frame) - 1
        )
    return out


# --- the line's speed ------------------------------------------------------------------------------------
_SPEEDS = {
    getattr(termios, f"B{baud}"): baud
    for baud in (
        50,
        75,
        110,
        134,
        150,
        200,
        300,
        600,
        1200,
        1800,
        2400,
        4800,
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        500000,
        576000,
        921600,
        1000000,
        1152000,
        1500000,
        2000000,
        2500000,
        3000000,
        3500000,
        4000000,
    )
    if hasattr(termios, f"B{baud}")
}


def line_speed(fd: int | None) -> int | None:
    """The output speed of the terminal on `fd` in baud, from the kernel; None when it has none."""
    if fd is None:
        return None
    try:
        return _SPEEDS.get(termios.tcgetattr(fd)[5])
    except (termios.error, OSError, ValueError):
        return None


class LinePace:
    """When the line will have carried the bytes written to it, for a line of `baud` (None: not paced)."""

    def __init__(self, baud: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = baud / BITS_PER_BYTE if baud else None  # bytes per second
        self.clock = clock
        self.done_at = 0.0

    def sent(self, count: int) -> None:
        if self.rate is not None and count:
            self.done_at = max(self.clock(), self.done_at) + count / self.rate

    def behind(self) -> float:
        """Seconds until what was written has gone out (0: the line is idle)."""
        if self.rate is None:
            return 0.0
        return max(0.0, self.done_at - self.clock())


class Painter:
    """Writes frames to `term`: only what changed since the last one, everything after `invalidate`."""

    def __init__(
        self,
        term: Any,
        cap: Callable[..., str],
        styles: Mapping[Style, str],
        *,
        serial: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.term = term
        self.cap = cap
        self.output = Output(term.stream)
        self.previous: list[Line] | None = None
        self.size: Size | None = None
        self.normal = cap(term, "normal")
        self.styles = dict(styles)
        self.erase = cap(term, "clear_eol")
        self.move_cost = len(cap(term, "move_yx", 10, 10)) or 8
        self.pace = LinePace(line_speed(self.output.fd) if serial else None, clock)
        self.bytes_written = 0

    def invalidate(self) -> None:
        self.previous = None

    def paint(self, frame: list[Line], size: Size) -> None:
        out: list[str] = []
        previous = self.previous
        if previous is None or self.size != size or len(previous) != len(frame):
            out.append(self.normal + self.cap(self.term, "home") + self.cap(self.term, "clear"))
            previous = None
        pieces = frame_pieces(
            previous,
            frame,
            size.cols,
            move_cost=self.move_cost,
            erase_cost=len(self.erase) if self.erase else None,
        )
        at: tuple[int, int] | None = None  # where the cursor is after the last piece
        for piece in pieces:
            if at != (piece.row, piece.col):
                out.append(self.cap(self.term, "move_yx", piece.row, piece.col))
            style = self.styles.get(piece.style, "")
            if piece.text:
                out.append(style + piece.text + (self.normal if style else ""))
            if piece.erase:
                out.append(self.erase)
            at = (piece.row, piece.col + len(cells_of(piece.text)))
        self.previous = frame
        self.size = size
        if out:
            data = "".join(out)
            if self.output.write(data):
                self.bytes_written += len(data)
                with contextlib.suppress(UnicodeError):
                    self.pace.sent(len(data.encode(self.output.encoding, "replace")))
            else:
                self.previous = None  # nobody saw it (a hang-up): all of it again when the terminal is back
