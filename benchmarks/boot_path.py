"""Boot-path figures, measured in one test-bed VM so that every ratio compares like with like.

    .venv/bin/python benchmarks/boot_path.py [--rounds N]

Prints:
  - the ordinary initramfs with bootagent installed (it adds only the init-premount script) and without it,
    both built in the same guest, and the agent's own image (/boot/bootagent.img, loaded only by the
    recovery entry);
  - the cost of the init-premount script on an ordinary boot (the only thing an ordinary boot runs);
  - the time from choosing GRUB's "bootagent recovery menu" entry to the drawn menu over N rounds, split at
    the console markers (GRUB loading the kernel and both images, the kernel, udev and modules, the agent
    itself), and the same guest's bare `python3 -c pass` and `python3 -S -c pass` for scale;
  - the ordinary boot with the installed package's initramfs and without, over N alternating rounds, as a
    ratio: on the host's clock (GRUB entry -> root shell, noisy under TCG: GRUB's BIOS reads vary) and on the
    guest's own (systemd-analyze's kernel + initramfs phase, where the premount script runs).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.agent import build_agent_layer
from testbed.build import build_image
from testbed.initramfs import PREMOUNT, build_without_bootagent
from testbed.machine import Machine


def guest_seconds(machine: Machine, command: str, repeat: int) -> float:
    out = machine.check(
        f"s=$(date +%s%N); for i in $(seq {repeat}); do {command} >/dev/null 2>&1; done; e=$(date +%s%N); "
        f"echo $(( (e - s) / {repeat} ))",
        timeout=600,
    )
    return int(out.strip().splitlines()[-1]) / 1e9


# console markers on the way from GRUB's recovery entry to the drawn menu, in the order they appear
MENU_MARKS = {
    "kernel started": "Linux version",
    "/init": "Run /init as init process",
    "init-premount": "Running /scripts/init-premount",
    "drawn menu": "bootagent boot menu - pool",
}


def timeline(machine: Machine, marks: dict[str, str]) -> dict[str, float]:
    """Seconds from now until each console marker appears (in order)."""
    started = time.monotonic()
    out: dict[str, float] = {}
    for name, pattern in marks.items():
        machine.expect(pattern, 300)
        out[name] = time.monotonic() - started
    return out


# what the agent writes to the kernel log on its way to the menu (the premount script's line comes first)
AGENT_MARKS = {
    "python up": "agent ready after",
    "devices found": r"pool \S+ devices:",
    "pool imported": "imported read-only",
    "menu drawn": "menu drawn",
}


def agent_steps(machine: Machine) -> dict[str, float]:
    """Seconds from the premount script's 'starting the agent' to each of the agent's steps, read from the
    kernel log of the boot that just happened (the initramfs shares the booted kernel's log)."""
    log = machine.check("dmesg | grep 'bootagent: '")
    stamps: dict[str, float] = {}
    for line in log.splitlines():
        match = re.match(r"\[\s*([\d.]+)\] bootagent: (.*)", line)
        if match is None:
            continue
        at, text = float(match.group(1)), match.group(2)
        if text.startswith("starting the agent"):
            stamps.setdefault("start", at)
        for name, pattern in AGENT_MARKS.items():
            if re.search(pattern, text):
                stamps.setdefault(name, at)
    missing = [n for n in ("start", *AGENT_MARKS) if n not in stamps]
    if missing:
        raise RuntimeError(f"no {missing} in the kernel log:\n{log}")
    return {name: stamps[name] - stamps["start"] for name in AGENT_MARKS}


def print_steps(first: str, runs: list[dict[str, float]], *, indent: str) -> None:
    """The median time between consecutive marks (each run: seconds from `first` to each mark, in order)."""
    previous = first
    for mark in runs[0]:
        part = statistics.median(r[mark] - r.get(previous, 0.0) for r in runs)
        print(f"{indent}{previous} -> {mark}: {part:.2f} s")
        previous = mark


def kernel_phase_seconds(machine: Machine) -> float:
    """The guest's own clock: kernel start to the switch into the real root (initramfs included)."""
    machine.run("systemctl is-system-running --wait", timeout=300)
    out = machine.check("systemd-analyze time", timeout=120)
    match = re.search(r"Startup finished in (?:(\d+)min )?([\d.]+)s \(kernel\)", out)
    if match is None:
        raise RuntimeError(f"cannot read systemd-analyze: {out!r}")
    return int(match.group(1) or 0) * 60 + float(match.group(2))


def boot_seconds(machine: Machine) -> float:
    machine.reboot()
    machine.wait_for_grub()
    time.sleep(0.5)
    started = time.monotonic()
    machine.send("\r")
    machine.wait_for_boot(grub=False)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each boot measurement (default 3)")
    args = parser.parse_args()
    disk = build_agent_layer(build_image()).disk
    with tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp, Machine(disk, Path(tmp)) as vm:
        vm.start()
        vm.wait_for_boot()
        release = vm.check("uname -r").strip()
        initrd = f"/boot/initrd.img-{release}"
        vm.check(f"cp {initrd} /boot/with-agent.img", timeout=300)
        build_without_bootagent(vm, release, "/boot/without-agent.img")
        with_size = int(vm.check("stat -c %s /boot/with-agent.img").strip())
        without_size = int(vm.check("stat -c %s /boot/without-agent.img").strip())
        agent_size = int(vm.check("stat -c %s /boot/bootagent.img").strip())
        files = vm.check("zstd -dc /boot/bootagent.img | cpio -t 2>/dev/null | wc -l").strip()
        print(
            f"ordinary initramfs (compressed): without bootagent {without_size / 1e6:.3f} MB, "
            f"with it {with_size / 1e6:.3f} MB ({(with_size - without_size) / 1e3:+.1f} kB, "
            f"ratio {with_size / without_size:.4f})"
        )
        print(
            f"agent image /boot/bootagent.img (recovery entry only): {agent_size / 1e6:.1f} MB, "
            f"{files} entries; "
            f"recovery entry loads {(with_size + agent_size) / 1e6:.1f} MB "
            f"(ratio {(with_size + agent_size) / without_size:.2f} to the ordinary initramfs)"
        )

        script = PREMOUNT
        vm.check("mkdir -p /tmp/r/proc && echo 'root=ZFS=rpool/ROOT/beta ro quiet' > /tmp/r/proc/cmdline")
        premount = guest_seconds(vm, f"ROOTPREFIX=/tmp/r sh {script}", 200)
        true_cost = guest_seconds(vm, "sh -c :", 200)
        print(
            f"ordinary boot, init-premount/bootagent: {premount * 1e3:.2f} ms "
            f"(a bare 'sh -c :' here: {true_cost * 1e3:.2f} ms)"
        )

        bare = guest_seconds(vm, "python3 -c pass", 10)
        bare_s = guest_seconds(vm, "python3 -S -c pass", 10)
        agent_import = guest_seconds(
            vm, "PYTHONPATH=/usr/lib/python3/dist-packages python3 -S -c 'import bootagent.boot.main'", 5
        )
        print(
            f"python in this guest: 'python3 -c pass' {bare:.2f} s, 'python3 -S -c pass' {bare_s:.2f} s, "
            f"importing the agent {agent_import:.2f} s"
        )

        rounds: list[dict[str, float]] = []
        steps: list[dict[str, float]] = []
        for _ in range(args.rounds):
            vm.reboot()
            vm.wait_for_grub()
            time.sleep(0.5)
            vm.choose_grub_entry(1)
            rounds.append(timeline(vm, MENU_MARKS))
            vm.send("b")
            vm.wait_for_boot(grub=False)
            steps.append(agent_steps(vm))
        total = statistics.median(r["drawn menu"] for r in rounds)
        print(
            f"GRUB recovery entry -> drawn menu: {total:.1f} s, median of {len(rounds)} "
            f"{[round(r['drawn menu'], 1) for r in rounds]}; of which (medians):"
        )
        print_steps("GRUB entry", rounds, indent="  ")
        print("  the agent's own steps (kernel log timestamps, medians):")
        print_steps("starting the agent", steps, indent="    ")
        agent = statistics.median(r["drawn menu"] - r["init-premount"] for r in rounds)
        print(
            f"  the agent itself (init-premount -> drawn menu) {agent:.1f} s = "
            f"{agent / bare:.0f}x a bare 'python3 -c pass' in the same guest"
        )

        with_times: list[float] = []
        without_times: list[float] = []
        with_kernel: list[float] = []
        without_kernel: list[float] = []
        for _ in range(args.rounds):
            for image, wall, kernel in (
                ("without-agent", without_times, without_kernel),
                ("with-agent", with_times, with_kernel),
            ):
                vm.check(f"cp /boot/{image}.img {initrd} && sync", timeout=300)
                wall.append(boot_seconds(vm))
                kernel.append(kernel_phase_seconds(vm))
        w, wo = statistics.median(with_times), statistics.median(without_times)
        print(
            f"ordinary boot, GRUB entry -> root shell (host clock): without the agent {wo:.1f} s "
            f"{[round(t, 1) for t in without_times]}, with it {w:.1f} s {[round(t, 1) for t in with_times]}; "
            f"ratio {w / wo:.3f} (fastest of each: {min(with_times) / min(without_times):.3f})"
        )
        kw, kwo = statistics.median(with_kernel), statistics.median(without_kernel)
        print(
            f"ordinary boot, kernel + initramfs phase (guest clock, systemd-analyze): without the agent "
            f"{kwo:.2f} s {[round(t, 2) for t in without_kernel]}, with it {kw:.2f} s "
            f"{[round(t, 2) for t in with_kernel]}; ratio {kw / kwo:.3f} (fastest of each: "
            f"{min(with_kernel) / min(without_kernel):.3f}); the premount script's share of it "
            f"{premount / kw * 100:.3f} %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
