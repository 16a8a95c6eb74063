"""A big pool in the test bed: 500 boot environments x 20 snapshots against 10 x 20, in one guest (ratios).

    .venv/bin/python benchmarks/big_pool.py [--rounds N] [--environments 500] [--snapshots 20]

One guest, resumed from the saved booted state. First the small pool: the test bed's environments plus
clones of beta up to 10, each with SNAPSHOTS snapshots (`zfs snapshot -r`, one transaction for all), 15
automatic checkpoints on beta for prune to find; then the same pool grown to ENVIRONMENTS by more clones.
On each, N rounds of, timed inside the guest:

- `bootagent list --json` (the listing the menu draws from too) against `zfs list -H -p -t all -o
  name,...` of the same pool -- the command it could have run (goal: at most 1.0x);
- `update-grub` and bootagent's part of grub.cfg (bytes, entries), with the default `grub_entries: 20` and
  with no limit (0);
- GRUB itself, once per pool and limit (a reboot each): from the kernel's "reboot: Restarting system" to
  GRUB's menu drawn on the serial console (firmware, GRUB reading and parsing grub.cfg);
- `bootagent checkpoint`, `bootagent rollback --steps 1 --yes` (a new environment and update-grub) and
  `bootagent prune` (5 checkpoints over `keep_count`), each on beta.

The pool is built at every run (a few minutes under emulation), not cached.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.agent import build_agent_layer
from testbed.booted import build_booted
from testbed.build import build_image
from testbed.machine import GRUB_MENU, Machine, scenario_cpus

CONFIG = "/etc/bootagent/bootagent.yaml"
COLUMNS = "name,type,used,referenced,creation,createtxg,origin,mountpoint,canmount,guid"
WAIT = 3600.0


def guest_seconds(vm: Machine, command: str) -> float:
    """Run `command` (output discarded) and time it on the guest's clock."""
    out = vm.check(
        f"s=$(date +%s%N); ( {command} ) >/dev/null 2>&1; rc=$?; e=$(date +%s%N); "
        "echo timed $rc $(( (e - s) / 1000000 ))",
        WAIT,
    )
    m = re.search(r"timed (\d+) (\d+)", out)
    assert m, out
    if m.group(1) != "0":
        again = vm.check(command + " 2>&1 || true", WAIT)
        raise SystemExit(f"benchmark command failed ({m.group(1)}): {command}\n{again}")
    return int(m.group(2)) / 1000


def environments(vm: Machine) -> list[str]:
    return vm.check("zfs list -H -o name -d 1 rpool/ROOT").split()[1:]


def grow(vm: Machine, count: int) -> None:
    """Clones of beta's first snapshot until rpool/ROOT has `count` environments (one shell loop)."""
    have = len(environments(vm))
    if have >= count:
        return
    origin = vm.check("zfs list -H -o name -t snapshot -s createtxg -d 1 rpool/ROOT/beta | head -1").strip()
    vm.check(
        f"for i in $(seq {have} {count - 1}); do zfs clone -o canmount=noauto -o mountpoint=/ "
        f"-o org.bootagent:created-by=manual -o org.bootagent:description=bench {origin} "
        "rpool/ROOT/bench$i || exit 1; done",
        WAIT,
    )


def snapshots(vm: Machine, count: int, tag: str) -> None:
    """`count` snapshots of every environment, each a recursive one (one transaction for the pool)."""
    vm.check(
        f"for i in $(seq 1 {count}); do zfs snapshot -r -o org.bootagent:created-by=manual "
        f"rpool/ROOT@{tag}$i || exit 1; done",
        WAIT,
    )


def grub_part(vm: Machine) -> tuple[int, int]:
    """bytes and entries of bootagent's part of grub.cfg"""
    text = vm.check("sed -n '/^### BEGIN \\/etc\\/grub.d\\/42_bootagent/,/^### END/p' /boot/grub/grub.cfg")
    return len(text.encode()), text.count("menuentry ")


def set_limit(vm: Machine, limit: int) -> None:
    vm.check(
        f"sed -i 's/^grub_entries:.*/grub_entries: {limit}/' {CONFIG} && "
        f"grep -q '^grub_entries: {limit}$' {CONFIG}"
    )


def grub_seconds(vm: Machine) -> float:
    """Reboot; from the kernel's last line to GRUB's menu on the console (host clock); then boot on."""
    vm.reboot()
    vm.expect("reboot: Restarting system", 300)
    started = time.monotonic()
    vm.expect(GRUB_MENU, 600)
    seconds = time.monotonic() - started
    time.sleep(0.5)
    vm.send("\r")
    vm.wait_for_boot(WAIT, grub=False)
    return seconds


def measure(vm: Machine, size: str, rounds: int, results: dict[tuple[str, str], list[float]]) -> None:
    def add(what: str, seconds: float) -> None:
        results.setdefault((size, what), []).append(seconds)

    steps: list[tuple[str, Callable[[int], float]]] = [
        ("bootagent list --json", lambda r: guest_seconds(vm, "bootagent list --json")),
        ("zfs list (baseline)", lambda r: guest_seconds(vm, f"zfs list -H -p -t all -o {COLUMNS} -r rpool")),
        ("checkpoint", lambda r: guest_seconds(vm, f"bootagent checkpoint beta -n bench-{size}{r}")),
        ("rollback --steps 1", lambda r: guest_seconds(vm, "bootagent rollback beta --steps 1 --yes")),
        ("prune", lambda r: prune(vm, f"{size}{r}")),
    ]
    limits = (20, 0) if size == "big" else (20,)  # the small pool is under the limit: one and the same
    for r in range(rounds):
        for what, step in steps:
            add(what, step(r))
        for limit in limits:
            set_limit(vm, limit)
            add(f"update-grub, grub_entries {limit or 'all'}", guest_seconds(vm, "update-grub"))
            size_bytes, entries = grub_part(vm)
            results[(size, f"grub.cfg kB, grub_entries {limit or 'all'}")] = [size_bytes / 1000]
            results[(size, f"grub.cfg entries, grub_entries {limit or 'all'}")] = [float(entries)]
            if r == rounds - 1:  # a reboot each: once, with the grub.cfg just made
                add(f"GRUB to its menu, grub_entries {limit or 'all'}", grub_seconds(vm))
        set_limit(vm, 20)
        figures = ", ".join(f"{what} {v[-1]:.2f}" for (s, what), v in results.items() if s == size)
        print(f"{size} pool, round {r + 1}: {figures}", flush=True)


def prune(vm: Machine, tag: str) -> float:
    """15 automatic checkpoints on beta (prune keeps 10 by default): the time of the prune removing 5."""
    vm.check(
        "for i in $(seq 1 15); do zfs snapshot -o org.bootagent:created-by=automatic "
        f"rpool/ROOT/beta@auto-bench{tag}-$i || exit 1; done",
        WAIT,
    )
    return guest_seconds(vm, "bootagent prune")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--environments", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=20)
    args = parser.parse_args()
    booted = build_booted(build_agent_layer(build_image()))
    results: dict[tuple[str, str], list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp,
        Machine(booted.disk, Path(tmp), smp=scenario_cpus()) as vm,
    ):
        vm.resume(booted.state)
        grow(vm, 10)
        snapshots(vm, args.snapshots, "small")
        small = len(environments(vm))
        measure(vm, "small", args.rounds, results)
        started = time.monotonic()
        grow(vm, args.environments)
        snapshots(vm, args.snapshots, "big")
        built = time.monotonic() - started
        big = len(environments(vm))
        count = vm.check("zfs list -H -t all -o name -r rpool/ROOT | wc -l").strip()
        print(f"grew the pool to {big} environments, {count} datasets and snapshots in {built:.0f} s")
        measure(vm, "big", args.rounds, results)
    print()
    print(f"{small} environments against {big}, {args.rounds} rounds, {scenario_cpus()} vCPU")
    print("seconds (median; spread small / big), bytes and entries of bootagent's part of grub.cfg")
    whats = list(dict.fromkeys(what for _, what in results))
    print(f"{'':<40} {'small':>14} {'big':>14} {'big/small':>10}")
    for what in whats:
        # the small pool is under the limit: its figure with the limit is its figure without one
        limited = what.replace("entries all", "entries 20")
        a = results.get(("small", what)) or results.get(("small", limited), [])
        b = results.get(("big", what), [])
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        spread = f"{min(a):.2f}-{max(a):.2f} / {min(b):.2f}-{max(b):.2f}"
        print(f"{what:<40} {ma:>14.2f} {mb:>14.2f} {mb / ma:>10.2f}   {spread}")
    for size in ("small", "big"):
        tool = statistics.median(results[(size, "bootagent list --json")])
        base = statistics.median(results[(size, "zfs list (baseline)")])
        print(f"{size}: bootagent list --json / zfs list of the same pool: {tool / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
