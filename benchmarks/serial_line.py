"""The menu on a slow serial line: bytes per frame and how soon a held-down key settles.

    .venv/bin/python benchmarks/serial_line.py [--rounds N] [--baud 9600]

The menu runs as the pty tests run it (tests/unit/tui/child.py: the real app on a FakeSession), at 80x24 on
TERM=vt100, ASCII, in a pty whose speed is set to `--baud`; this script reads the pty at that speed (10 bits a
byte, as an 8N1 UART sends them) and feeds what it reads to a terminal emulator. QEMU's emulated UART does not
throttle to its baud rate, so the test bed's serial console cannot show this; the pty can. Keys are never
slowed (a person's keys are a few bytes).

Prints, as medians (and the spread) over N rounds:
  - the bytes of the first full frame, of one arrow-key move (j, then k, ...: the cursor between two rows of
    a list of 3 + `--environments` environments) and their ratio;
  - holding `j` down for 2 s (30 keys a second, as a keyboard repeats): the seconds from the last key to the
    last byte on the line, the bytes sent, and whether the screen ended on the right row; once for the
    serial console (frames paced to the line) and once for the same menu told it is a local console (a frame
    per key, the line's queue behind it), the baseline of the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.tui.pty_harness import MenuProcess

KEY_RATE = 30.0  # keys a second while a key is held down
HOLD = 2.0  # seconds the key is held
QUIET = 2.0  # seconds without a byte after which the line has settled
SELECTED = re.compile(r"^>\s+(\d+)")


class Line:
    """The far end of a serial line of `baud`: reads the pty no faster than the line would carry it."""

    def __init__(self, proc: MenuProcess, baud: int) -> None:
        self.proc = proc
        self.rate = baud / 10
        self.free_at = time.monotonic()
        self.bytes = 0
        self.last_byte_at = time.monotonic()

    def carry(self, seconds: float) -> None:
        """Carry what the menu writes for `seconds`."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                return
            if self.free_at > now:
                time.sleep(min(self.free_at, end) - now)
                continue
            ready, _, _ = select.select([self.proc.fd], [], [], end - now)
            if not ready:
                continue
            try:
                data = os.read(self.proc.fd, 16)  # 16 bytes: a UART's FIFO
            except (BlockingIOError, InterruptedError):
                continue
            if not data:
                return
            self.proc.raw += data
            self.proc.stream.feed(data)
            self.bytes += len(data)
            self.free_at = max(self.free_at, time.monotonic()) + len(data) / self.rate
            self.last_byte_at = self.free_at  # the byte has left the line when it is through

    def settle(self, limit: float = 300.0) -> float:
        """Carry until the line has been quiet for QUIET seconds; the time of its last byte."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = self.bytes
            self.carry(QUIET)
            if self.bytes == before:
                return self.last_byte_at
        raise SystemExit(f"the line did not settle within {limit:.0f} s")

    def key(self, key: str) -> None:
        os.write(self.proc.fd, key.encode())


def selected_row(proc: MenuProcess) -> int:
    for line in proc.lines:
        match = SELECTED.match(line)
        if match:
            return int(match.group(1))
    raise SystemExit("no selected row on the screen:\n" + proc.text)


def one_round(tmp: Path, *, baud: int, environments: int, keys: int, serial: bool) -> dict[str, float]:
    """One menu on a line of `baud`: its first frame, ten single moves, then `keys` presses of j at
    KEY_RATE from the top of the list."""
    args = ["--timeout", "0", "--environments", str(environments)] + (["--serial"] if serial else [])
    proc = MenuProcess(tmp, *args, term="vt100", baud=baud)
    try:
        line = Line(proc, baud)
        deadline = time.monotonic() + 120
        while not line.bytes and time.monotonic() < deadline:  # the interpreter starting, the first frame
            line.carry(0.1)
        line.settle()
        full = line.bytes
        moves: list[int] = []
        for key in "jkjkjkjkjk":
            before = line.bytes
            line.key(key)
            line.settle()
            moves.append(line.bytes - before)
        line.key("g")  # to the top
        line.settle()
        before = line.bytes
        for _ in range(keys):
            line.key("j")
            line.carry(1 / KEY_RATE)
        released = time.monotonic()
        settled = line.settle()
        held = line.bytes - before
        want = min(1 + keys, 3 + environments)
        got = selected_row(proc)
        if got != want:
            raise SystemExit(f"the held key ended on row {got}, not {want}:\n{proc.text}")
        return {
            "full": full,
            "move": statistics.median(moves),
            "settle": max(0.0, settled - released),
            "held": held,
        }
    finally:
        proc.close()


def spread(values: list[float]) -> str:
    return f"{min(values):.4g}-{max(values):.4g}"


CASES = (  # (what, more environments, keys held)
    ("in the page: 12 environments, j held 11 times", 9, 11),
    (f"scrolling: 103 environments, j held {HOLD:.0f} s", 100, int(HOLD * KEY_RATE)),
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    results: dict[tuple[int, bool], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bootagent-serial-") as tmp:
        for round_ in range(args.rounds):
            for case, (what, environments, keys) in enumerate(CASES):
                for serial in (True, False) if round_ % 2 == 0 else (False, True):
                    where = Path(tmp) / f"{round_}-{case}-{serial}"
                    where.mkdir()
                    r = one_round(where, baud=args.baud, environments=environments, keys=keys, serial=serial)
                    results.setdefault((case, serial), []).append(r)
                    kind = "serial console" if serial else "local console"
                    print(
                        f"round {round_ + 1}, {what}, {kind}: full frame {r['full']:.0f} B, move "
                        f"{r['move']:.0f} B, held: {r['held']:.0f} B, "
                        f"settled {r['settle']:.2f} s after the last key",
                        flush=True,
                    )

    def values(case: int, serial: bool, key: str) -> list[float]:
        return [r[key] for r in results[(case, serial)]]

    def med(case: int, serial: bool, key: str) -> float:
        return statistics.median(values(case, serial, key))

    print()
    print(f"80x24, vt100, {args.baud} baud ({args.baud // 10} B/s), median of {args.rounds} rounds (spread)")
    full, move = med(0, True, "full"), med(0, True, "move")
    print(
        f"{'full frame, 12 environments':<48} {full:>7.0f} B  ({full / (args.baud / 10):.2f} s on the line)"
    )
    print(f"{'one move':<48} {move:>7.0f} B  ratio to the full frame {move / full:.3f}")
    print(f"{'':<48} {'serial':>10} {'local':>10} {'ratio':>7}")
    for case, (what, _, _) in enumerate(CASES):
        print(what)
        for key, label, unit in (
            ("held", "  bytes sent", "B"),
            ("settle", "  settled after the last key", "s"),
        ):
            a, b = med(case, True, key), med(case, False, key)
            ratio = f"{a / b:.3f}" if b else "-"
            print(f"{label:<48} {a:>9.3g}{unit} {b:>9.3g}{unit} {ratio:>7}")
            paced, unpaced = spread(values(case, True, key)), spread(values(case, False, key))
            print(f"{'    spread':<48} {paced:>10} {unpaced:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
