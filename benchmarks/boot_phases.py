"""Where an ordinary boot's time goes in the test bed, and what extra kernel parameters change (ratios, same
guest, alternating rounds).

    .venv/bin/python benchmarks/boot_phases.py [--rounds N] [--extra "mitigations=off"]

Each round reboots the guest twice -- once as configured, once with EXTRA appended to
GRUB_CMDLINE_LINUX_DEFAULT (update-grub in between) -- and splits each boot, on the host's clock, into:
GRUB's menu to the kernel's first line, the kernel's first line to systemd in the real root, and from there
to a root shell with the startup jobs done; plus systemd-analyze's own kernel / initrd / userspace figures.
BOOTAGENT_VM_IMAGE=DISK uses that disk instead of building (or finding) the agent layer.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.machine import Machine, scenario_cpus

PHASES = ("GRUB -> kernel", "kernel -> real root", "real root -> shell", "whole boot")
ANALYZE = ("kernel", "initrd", "userspace")


def set_extra(vm: Machine, extra: str) -> None:
    vm.check(
        f"sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=\"{extra}\"/' /etc/default/grub"
        " && update-grub 2>&1",
        600,
    )
    assert extra in vm.check("grep ^GRUB_CMDLINE_LINUX_DEFAULT= /etc/default/grub")


def one_boot(vm: Machine) -> dict[str, float]:
    vm.reboot()
    vm.wait_for_grub()
    time.sleep(0.5)
    t0 = time.monotonic()
    vm.send("\r")
    vm.expect("Linux version", 300)
    t1 = time.monotonic()
    vm.expect(r"systemd\[1\]: .*(Switching root|Detected virtualization)|Welcome to", 600)
    t2 = time.monotonic()
    vm.wait_for_boot(grub=False)
    t3 = time.monotonic()
    out = dict(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True))
    analyze = vm.check("systemd-analyze time 2>&1 | head -1")
    for name in ANALYZE:
        m = re.search(rf"([\d.]+)(ms|s|min) \({name}\)", analyze)
        if m:
            value = float(m.group(1))
            out[name] = value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "min" else value
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="boots of each kind (default 3)")
    parser.add_argument("--extra", default="mitigations=off", help="kernel parameters to compare")
    args = parser.parse_args()
    if os.environ.get("BOOTAGENT_VM_IMAGE"):
        disk = Path(os.environ["BOOTAGENT_VM_IMAGE"])
    else:
        from testbed.agent import build_agent_layer
        from testbed.build import build_image

        disk = build_agent_layer(build_image()).disk
    base = ""
    vm_default = ""
    results: dict[str, list[dict[str, float]]] = {base: [], args.extra: []}
    with (
        tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp,
        Machine(Path(disk), Path(tmp), smp=scenario_cpus()) as vm,
    ):
        vm.start()
        vm.wait_for_boot()
        vm_default = vm.check("grep ^GRUB_CMDLINE_LINUX_DEFAULT= /etc/default/grub").strip()
        for round_ in range(args.rounds):
            for extra in (base, args.extra) if round_ % 2 == 0 else (args.extra, base):
                set_extra(vm, extra)
                got = one_boot(vm)
                results[extra].append(got)
                figures = ", ".join(f"{k} {v:.1f} s" for k, v in got.items())
                print(f"round {round_ + 1} {extra or 'as configured'}: {figures}", flush=True)
    print()
    print(f"configured: {vm_default}; compared: {args.extra!r}; {scenario_cpus()} vCPU")
    print(
        f"{'median of ' + str(args.rounds) + ' boots':<24} {'as is':>8} {args.extra:>16} {'ratio':>7}  spread"
    )
    for name in (*PHASES, *ANALYZE):
        a = [r[name] for r in results[base] if name in r]
        b = [r[name] for r in results[args.extra] if name in r]
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        spread = f"{min(a):.1f}-{max(a):.1f} / {min(b):.1f}-{max(b):.1f}"
        print(f"{name:<24} {ma:>7.1f}s {mb:>15.1f}s {mb / ma:>7.3f}  {spread}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
