"""What boot counting and blessing cost on a good boot, measured in one test-bed VM (ratios, same guest).

    .venv/bin/python benchmarks/boot_counting.py [--rounds N]

Alternating rounds of an ordinary good boot:
  - with counting (the package as installed): GRUB reads and writes grubenv (one save_env in the default
    entry), bootagent-boot-start, bootagent-health (no checks installed) and bootagent-bless run;
  - without: the three units disabled and no grubenv, so GRUB neither loads nor saves one.
Prints the medians of: GRUB's part (Enter at the menu -> the kernel's first line, where the save_env is),
the whole boot (Enter -> root shell with systemd's startup jobs done), and each unit's own run time
(systemd's ExecMain timestamps), with the ratios with/without.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.agent import build_agent_layer
from testbed.build import build_image
from testbed.machine import Machine

UNITS = ("bootagent-boot-start.service", "bootagent-health.service", "bootagent-bless.service")


def one_boot(vm: Machine) -> tuple[float, float]:
    """(GRUB's part, the whole boot) in seconds on the host's clock."""
    vm.reboot()
    vm.wait_for_grub()
    time.sleep(0.5)
    started = time.monotonic()
    vm.send("\r")
    vm.expect("Linux version", 300)
    grub = time.monotonic() - started
    vm.wait_for_boot(grub=False)
    return grub, time.monotonic() - started


def unit_seconds(vm: Machine, unit: str) -> float | None:
    out = vm.check(
        f"systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic {unit}"
    )
    values = dict(line.split("=", 1) for line in out.split() if "=" in line)
    start = int(values.get("ExecMainStartTimestampMonotonic", "0") or 0)
    end = int(values.get("ExecMainExitTimestampMonotonic", "0") or 0)
    return (end - start) / 1e6 if start and end >= start else None


def with_counting(vm: Machine, on: bool) -> None:
    if on:
        vm.check("systemctl enable " + " ".join(UNITS))
        vm.check("bootagent activate beta")  # writes a fresh grubenv
    else:
        vm.check("systemctl disable " + " ".join(UNITS))
        vm.check("rm -f /boot/grub/grubenv && sync")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="boots of each kind (default 3)")
    args = parser.parse_args()
    disk = build_agent_layer(build_image()).disk
    grub: dict[bool, list[float]] = {True: [], False: []}
    whole: dict[bool, list[float]] = {True: [], False: []}
    units: dict[str, list[float]] = {u: [] for u in UNITS}
    with tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp, Machine(disk, Path(tmp)) as vm:
        vm.start()
        vm.wait_for_boot()
        for round_ in range(args.rounds):
            for on in (True, False) if round_ % 2 == 0 else (False, True):
                with_counting(vm, on)
                g, w = one_boot(vm)
                grub[on].append(g)
                whole[on].append(w)
                if on:
                    for unit in UNITS:
                        seconds = unit_seconds(vm, unit)
                        if seconds is not None:
                            units[unit].append(seconds)
                print(
                    f"round {round_ + 1} {'with' if on else 'without'} counting: "
                    f"GRUB {g:.1f} s, boot {w:.1f} s"
                )
    print()
    print(f"{'median of ' + str(args.rounds) + ' boots':<34} {'with':>8} {'without':>8} {'ratio':>7}")
    for name, data in (("GRUB: Enter -> kernel (save_env)", grub), ("boot: Enter -> root shell", whole)):
        a, b = median(data[True]), median(data[False])
        print(f"{name:<34} {a:>7.1f}s {b:>7.1f}s {a / b:>7.3f}")
    total = 0.0
    for unit in UNITS:
        seconds = median(units[unit])
        total += seconds
        print(f"{unit:<34} {seconds:>7.2f}s")
    print(f"{'the three units together':<34} {total:>7.2f}s  ({total / median(whole[True]):.1%} of the boot)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
