"""What `bootagent status` spends in the journal, by journal size, measured on this host's disk.

    .venv/bin/python benchmarks/journal_status.py [--sizes 1,5,10,50] [--rounds N] [--full] [--dir DIR]

For each size (MB) it builds a journal in a temporary directory (under --dir, default the system's) the way
years of use leave one: the lines written straight to the file, then three operations left pending through
the journal itself, one of them before all the other lines. It prints the median of N rounds (and the bytes
read) of:
  - entries(10): what `status` shows; it reads the file from its end, as far as ten entries;
  - pending(): the operations cut short; it lists the sidecars and reads a line at each place they record;
  - one operation (intent, an empty body, outcome, the trim's check), with all its syncs;
  - with --full, entries() over the whole file and pending() of the same journal without its sidecars (how
    a journal of an older version is read until its next write): what `status` cost before, for scale.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootagent.journal import Journal, JournalEntry, Outcome
from bootagent.model import Actor

MB = 1 << 20


def build(directory: Path, size: int) -> Journal:
    """A journal of about `size` bytes, with three pending operations (one before every other line)."""
    journal = Journal(directory, actor=Actor.CLI, max_entries=1_000_000)
    first = journal.record("rollback", "beta", Outcome.INTENT, detail="cut long ago")
    lines: list[bytes] = []
    written = journal.path.stat().st_size
    start = time.time() - 3 * 365 * 86400
    i = 0
    while written < size:
        op = f"{i:012x}"
        for outcome in (Outcome.INTENT, Outcome.OK):
            line = JournalEntry(
                start + i * 60,
                op,
                Actor.AUTOMATIC,
                "checkpoint",
                f"beta@cp-{i:08d}",
                outcome,
                "apt: upgrade of 12 packages" if i % 3 else "",
                {"kernel": "6.1.0-1-amd64"} if i % 5 == 0 else {},
            ).line()
            lines.append(line)
            written += len(line)
        i += 1
        if len(lines) >= 10000:
            flush(journal, lines)
    flush(journal, lines)
    journal.record("destroy", "old", Outcome.INTENT)
    journal.record("activate", "gamma", Outcome.INTENT)
    assert journal.pending()[0].op == first.op
    return journal


def flush(journal: Journal, lines: list[bytes]) -> None:
    with open(journal.path, "ab") as fh:
        fh.write(b"".join(lines))
    lines.clear()


def measure(call: Callable[[], object], rounds: int) -> tuple[float, int]:
    """Median seconds of `call`, and the bytes it read through os.pread (the journal reads only so)."""
    real = os.pread
    read = [0]

    def counting(fd: int, size: int, offset: int) -> bytes:
        data = real(fd, size, offset)
        read[0] += len(data)
        return data

    times = []
    os.pread = counting
    try:
        for _ in range(rounds):
            read[0] = 0
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    finally:
        os.pread = real
    return statistics.median(times), read[0]


def figure(seconds: float, read: int) -> str:
    amount = f"{read / 1024:.1f} kB" if read < MB else f"{read / MB:.1f} MB"
    return f"{seconds * 1e3:8.2f} ms ({amount} read)"


def operation(journal: Journal) -> None:
    with journal.operation("checkpoint", "beta@bench"):
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,5,10,50", help="journal sizes in MB (default 1,5,10,50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each measurement (default 5)")
    parser.add_argument("--full", action="store_true", help="also read whole journals, the old way (slow)")
    parser.add_argument("--dir", default=None, help="where to build the journals (default: the system's)")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    print(f"journal of N MB: median of {args.rounds} rounds (bytes read)")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bootagent-journal-", dir=args.dir) as tmp:
            journal = build(Path(tmp), int(size * MB))
            real_size = journal.path.stat().st_size
            lines = journal.path.read_bytes().count(b"\n")
            pending = len(journal.pending())
            tail = figure(*measure(functools.partial(journal.entries, 10), args.rounds))
            open_ops = figure(*measure(journal.pending, args.rounds))
            one = figure(*measure(functools.partial(operation, journal), args.rounds))
            print(f"{real_size / MB:5.1f} MB, {lines:7d} lines, {pending} pending:")
            print(f"  entries(10)     {tail}")
            print(f"  pending()       {open_ops}")
            print(f"  one operation   {one}")
            if args.full:
                everything = figure(*measure(journal.entries, 1))
                for sidecar in journal.pending_dir.iterdir():
                    sidecar.unlink()
                journal.pending_dir.rmdir()
                scan = figure(*measure(journal.pending, 1))
                print(f"  entries() whole {everything}")
                print(f"  pending() scan  {scan}  (no sidecars: a journal of an older version)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
