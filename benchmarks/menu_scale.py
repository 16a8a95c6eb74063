"""How fast the menu answers a key with a big pool: 500 environments x 20 snapshots against 10 x 20.

    .venv/bin/python benchmarks/menu_scale.py [--rounds N] [--keys N]

The menu runs as the pty tests run it (tests/unit/tui/child.py: the real app on a FakeSession, whose
listing is in memory: this measures the menu's own work, not ZFS's), at 80x24 on TERM=vt220, as a local
console (no pacing). It goes to the last environment (G), opens its 20 snapshots (+), moves down through
them (j), to the top (g), then a page at a time (PgDn) through the whole list; for each key it times the
menu's answer: the first byte of the new frame, and the frame complete (no byte for 30 ms after). Prints the
median, the 95th percentile and the slowest over all rounds for each pool, and the ratio 500/10 of the
medians.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.tui.pty_harness import MenuProcess

QUIET = 0.03  # seconds without output after which a frame is complete
PGDN = "\x1b[6~"
SIZES = (10, 500)
SNAPSHOTS = 20


def answer(proc: MenuProcess, key: str, timeout: float = 10.0) -> tuple[float, float] | None:
    """Seconds from writing `key` to the first byte of the answer, and to the frame complete; None when
    nothing came within `timeout` (the key changed nothing: the menu sends nothing then)."""
    os.write(proc.fd, key.encode())
    sent = time.monotonic()
    first: float | None = None
    deadline = sent + timeout
    while True:
        wait = QUIET if first is not None else deadline - time.monotonic()
        if wait <= 0:
            return None
        ready, _, _ = select.select([proc.fd], [], [], wait)
        if not ready:
            if first is not None:
                return first - sent, time.monotonic() - QUIET - sent
            continue
        data = os.read(proc.fd, 65536)
        if first is None:
            first = time.monotonic()
        proc.raw += data
        proc.stream.feed(data)


def one_round(tmp: Path, environments: int, keys: int) -> dict[str, list[float]]:
    """G, + (the last environment's snapshots), j `keys` times, g, then PgDn down to the end."""
    proc = MenuProcess(
        tmp, "--timeout", "0", "--environments", str(environments - 3), "--snapshots", str(SNAPSHOTS)
    )
    try:
        proc.wait_for("Enter=boot", timeout=120)
        proc.pump(0.3)
        out: dict[str, list[float]] = {"first": [], "done": []}

        def timed(key: str, timeout: float = 10.0) -> bool:
            got = answer(proc, key, timeout)
            if got is None:
                return False
            out["first"].append(got[0])
            out["done"].append(got[1])
            return True

        for key in ["G", "+", *["j"] * keys, "g"]:
            if not timed(key):
                raise SystemExit(f"no answer to {key!r}:\n{proc.text}")
        while timed(PGDN, 1.0):  # one page after another, to the end of the list
            pass
        return out
    finally:
        proc.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20, help="presses of j per round (at most 20)")
    args = parser.parse_args()
    results: dict[int, dict[str, list[float]]] = {n: {"first": [], "done": []} for n in SIZES}
    with tempfile.TemporaryDirectory(prefix="bootagent-scale-") as tmp:
        for round_ in range(args.rounds):
            for n in SIZES if round_ % 2 == 0 else tuple(reversed(SIZES)):
                where = Path(tmp) / f"{round_}-{n}"
                where.mkdir()
                got = one_round(where, n, args.keys)
                for k, v in got.items():
                    results[n][k] += v
                print(
                    f"round {round_ + 1}, {n} environments x {SNAPSHOTS} snapshots: key answered in a median "
                    f"{statistics.median(got['first']) * 1000:.1f} ms, frame done in "
                    f"{statistics.median(got['done']) * 1000:.1f} ms",
                    flush=True,
                )
    print()
    head = f"ms, over all keys of {args.rounds} rounds"
    print(f"{head:<40} {'median':>8} {'p95':>8} {'slowest':>8}")
    for n in SIZES:
        for k, label in (("first", "answered"), ("done", "frame done")):
            v = results[n][k]
            print(
                f"{f'{n} x {SNAPSHOTS}: {label}':<40} {statistics.median(v) * 1000:>8.1f} "
                f"{pct(v, 0.95) * 1000:>8.1f} {max(v) * 1000:>8.1f}"
            )
    small, big = SIZES
    for k, label in (("first", "answered"), ("done", "frame done")):
        ratio = statistics.median(results[big][k]) / statistics.median(results[small][k])
        print(f"ratio {big}/{small}, {label}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
