"""GRUB's menu for a big pool: what `bootagent grub-menu` writes for 500 environments x 20 snapshots
against 10 x 20, with the package's default entry limit (`grub_entries: 20`) and without one (0).

    .venv/bin/python benchmarks/grub_scale.py [--rounds N]

The pools are the in-memory ones of the pty tests (tests/unit/tui/fake_session.py), so this measures
bootagent's generator, not ZFS: the bytes it adds to grub.cfg (which GRUB reads and parses at every boot),
its entries and submenus, and the time to make them (median and spread of N rounds), as ratios 500/10.
How long GRUB itself takes to show such a menu needs the test bed (not measured here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootagent.config import Config
from bootagent.grub.generate import MenuSources, generate
from bootagent.grub.menu import render
from bootagent.runner import CommandResult
from tests.unit.tui.fake_session import FakeSession

SIZES = (10, 500)
SNAPSHOTS = 20
LIMITS = (Config().grub_entries, 0)


def no_tools(argv: Sequence[str], **_: Any) -> CommandResult:
    """grub-probe and friends are not run: the generator falls back as it does without them."""
    return CommandResult(tuple(argv), 1, "", "not run by the benchmark")


def one(n: int, limit: int) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        session = FakeSession(Path(tmp), environments=n - 3, snapshots=SNAPSHOTS, running=True)
        config = Config(pool="rpool", grub_entries=limit)
        started = time.perf_counter()
        text = render(generate(config, MenuSources(zfs=session.zfs, runner=no_tools, environ={})))
        return text, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"bootagent's part of grub.cfg, {SNAPSHOTS} snapshots per environment, {args.rounds} rounds")
    head = f"{'environments':<14} {'grub_entries':>12} {'bytes':>9} {'entries':>8} {'submenus':>9}"
    print(f"{head} {'make (ms, median)':>18} {'spread':>14}")
    figures: dict[tuple[int, int], dict[str, Any]] = {}
    for limit in LIMITS:
        for n in SIZES:
            times = []
            text = ""
            for _ in range(args.rounds):
                text, seconds = one(n, limit)
                times.append(seconds)
            f = figures[n, limit] = {
                "bytes": len(text.encode()),
                "entries": text.count("menuentry "),
                "submenus": text.count("submenu "),
                "times": times,
            }
            ms = [t * 1000 for t in times]
            print(
                f"{n:<14} {limit or 'all':>12} {f['bytes']:>9} {f['entries']:>8} {f['submenus']:>9} "
                f"{statistics.median(ms):>18.1f} {min(ms):>6.1f}-{max(ms):<7.1f}"
            )
    for limit in LIMITS:
        small, big = figures[SIZES[0], limit], figures[SIZES[1], limit]
        print(
            f"ratio {SIZES[1]}/{SIZES[0]}, grub_entries {limit or 'all'}: "
            f"bytes {big['bytes'] / small['bytes']:.1f}, entries {big['entries'] / small['entries']:.1f}, "
            f"time {statistics.median(big['times']) / statistics.median(small['times']):.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
