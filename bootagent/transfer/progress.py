"""A progress line for a long copy: bytes, rate and the time left (from `zfs send -nP`'s estimate).

On a terminal the line is redrawn in place a few times a second; anywhere else (a log, a pipe, a serial
console captured by a script) a full line is written every 10 % or every 30 seconds, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: float) -> str:
    unit = 0
    while abs(n) >= 1024 and unit < len(_UNITS) - 1:
        n /= 1024
        unit += 1
    return f"{n:.0f} {_UNITS[unit]}" if unit == 0 else f"{n:.1f} {_UNITS[unit]}"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def line(what: str, done: int, estimate: int | None, elapsed: float) -> str:
    """`beta@x: 12.0 MiB of ~40.0 MiB (30 %), 6.0 MiB/s, 0:05 left` (no estimate: no share, no time left)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{what}: {size(done)}"
    if estimate:
        share = min(99, int(100 * done / estimate)) if done < estimate else 99
        text += f" of ~{size(estimate)} ({share} %)"
    text += f", {size(rate)}/s"
    if estimate and rate > 0 and done < estimate:
        text += f", {duration((estimate - done) / rate)} left"
    return text


class ProgressLine:
    def __init__(
        self,
        what: str,
        estimate: int | None,
        out: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.estimate = estimate
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self._last_time = self.started
        self._last_share = 0
        self._width = 0
        self.last = 0  # bytes reported so far

    def __call__(self, done: int) -> None:
        self.last = done
        now = self.clock()
        if self.tty:
            if now - self._last_time < 0.25:
                return
            text = line(self.what, done, self.estimate, now - self.started)
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            share = int(10 * done / self.estimate) if self.estimate else 0
            if share <= self._last_share and now - self._last_time < 30:
                return
            self._last_share = max(share, self._last_share)
            self.out.write(line(self.what, done, self.estimate, now - self.started) + "\n")
        self._last_time = now
        self.out.flush()

    def done(self, total: int, seconds: float) -> str:
        rate = total / seconds if seconds > 0 else 0.0
        text = f"{self.what}: {size(total)} in {duration(seconds)} ({size(rate)}/s)"
        if self.tty:
            self.out.write("\r" + text.ljust(self._width) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()
        return text
