"""What a factory reset costs, and whether it depends on the size of the customer's data (one test-bed VM).

    .venv/bin/python benchmarks/factory_reset.py [--large-mib N]

Four resets in one guest, each asked for from the running system (`bootagent factory-reset ... --yes`) and
carried out by the early-boot agent at the next boot:
  1. keep-data with the test bed's small customer data (about 1 MiB in rpool/customer/globex),
  2. keep-data after N MiB (default 1024) more were written into it,
  3. erase-all with that large dataset (it is destroyed and re-created empty),
  4. erase-all again, with the (now empty) small one.
For each: the agent's reset steps (the sum of its "reset step ... done in S s" kernel-log lines, on the
guest's clock) and reboot -> root shell (on the host's clock, the whole boot through the agent). Ratios
large/small per mode: a keep-data reset clones the baseline and touches no customer data, so its ratio
should be about 1.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.agent import build_agent_layer
from testbed.build import build_image
from testbed.machine import Machine

WAIT = 1800.0


def one_reset(vm: Machine, mode: str) -> tuple[float, float]:
    """(the agent's reset steps on the guest's clock, reboot -> root shell on the host's) in seconds."""
    vm.check(f"bootagent factory-reset --{mode} --yes")
    started = time.monotonic()
    vm.reboot()
    vm.expect("FACTORY RESET UNDER WAY", 300)
    vm.wait_for_boot(WAIT, grub=False)
    whole = time.monotonic() - started
    log = vm.check("dmesg | grep 'bootagent: reset step' || true")
    steps = sum(float(s) for s in re.findall(r"done in ([0-9.]+) s", log))
    return steps, whole


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large-mib", type=int, default=1024, help="MiB written for the large case")
    args = parser.parse_args()
    disk = build_agent_layer(build_image()).disk
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp, Machine(disk, Path(tmp)) as vm:
        vm.start()
        vm.wait_for_boot()
        for mode, data in (
            ("keep-data", "small"),
            ("keep-data", "large"),
            ("erase-all", "large"),
            ("erase-all", "small"),
        ):
            if mode == "keep-data" and data == "large":
                vm.check(
                    f"head -c {args.large_mib}M /dev/urandom > /srv/customer/globex/large.bin && sync",
                    3600,
                )
            used = int(vm.check("zfs get -H -p -o value used rpool/customer/globex").strip())
            steps, whole = one_reset(vm, mode)
            rows.append((mode, f"{data} ({used / 2**20:.0f} MiB)", steps, whole))
            print(
                f"{mode:<10} {data:<6} {used / 2**20:>8.0f} MiB: reset steps {steps:6.1f} s, "
                f"reboot -> shell {whole:6.1f} s",
                flush=True,
            )
    print()
    print(f"{'mode':<10} {'customer data':<18} {'reset steps':>12} {'reboot->shell':>14}")
    for mode, data, steps, whole in rows:
        print(f"{mode:<10} {data:<18} {steps:>11.1f}s {whole:>13.1f}s")
    for mode in ("keep-data", "erase-all"):
        small = next(r for r in rows if r[0] == mode and r[1].startswith("small"))
        large = next(r for r in rows if r[0] == mode and r[1].startswith("large"))
        print(
            f"{mode}: large/small ratio: reset steps {large[2] / max(small[2], 0.01):.2f}, "
            f"reboot -> shell {large[3] / small[3]:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
