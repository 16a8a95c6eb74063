"""Boot-path figures, measured in one test-bed VM so that every ratio compares like with like.

    .venv/bin/python benchmarks/boot_path.py [--rounds N]

Prints:
  - the ordinary initramfs with bootagent installed (it adds only the init-premount script) and without it,
    both built in the same guest, and the agent's own image (/boot/bootagent.img, loaded only by the
    recovery entry);
  - the cost of the init-premount script on an ordinary boot (the only thing an ordinary boot runs);
  - the time from choosing GRUB's "bootagent recovery menu" entry to the drawn menu, and the same guest's
    bare `python3 -c pass` and `python3 -S -c pass` for scale;
  - the ordinary boot (GRUB entry -> root shell) with the installed package's initramfs and without, as a
    ratio, over alternating rounds.
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

PREMOUNT = "/usr/share/initramfs-tools/scripts/init-premount/bootagent"


def guest_seconds(machine: Machine, command: str, repeat: int) -> float:
    out = machine.check(
        f"s=$(date +%s%N); for i in $(seq {repeat}); do {command} >/dev/null 2>&1; done; e=$(date +%s%N); "
        f"echo $(( (e - s) / {repeat} ))",
        timeout=600,
    )
    return int(out.strip().splitlines()[-1]) / 1e9


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
    parser.add_argument("--rounds", type=int, default=2, help="alternating ordinary-boot rounds (default 2)")
    args = parser.parse_args()
    disk = build_agent_layer(build_image()).disk
    with tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp, Machine(disk, Path(tmp)) as vm:
        vm.start()
        vm.wait_for_boot()
        release = vm.check("uname -r").strip()
        initrd = f"/boot/initrd.img-{release}"
        vm.check(f"cp {initrd} /boot/with-agent.img", timeout=300)
        vm.check(
            f"mv {PREMOUNT} /root/premount.off && mkinitramfs -o /boot/without-agent.img {release}; "
            f"rc=$?; mv /root/premount.off {PREMOUNT}; exit $rc",
            timeout=900,
        )
        with_size = int(vm.check("stat -c %s /boot/with-agent.img").strip())
        without_size = int(vm.check("stat -c %s /boot/without-agent.img").strip())
        agent_size = int(vm.check("stat -c %s /boot/bootagent.img").strip())
        files = vm.check("zstd -dc /boot/bootagent.img | cpio -t 2>/dev/null | wc -l").strip()
        print(
            f"ordinary initramfs (compressed): without bootagent {without_size / 1e6:.3f} MB, "
            f"with it {with_size / 1e6:.3f} MB (+{(with_size - without_size) / 1e3:.1f} kB, "
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

        vm.reboot()
        vm.wait_for_grub()
        time.sleep(0.5)
        vm.choose_grub_entry(1)
        started = time.monotonic()
        vm.expect("bootagent boot menu - pool", 300)
        to_menu = time.monotonic() - started
        print(
            f"GRUB recovery entry -> drawn menu: {to_menu:.1f} s "
            f"({to_menu / bare:.0f}x a bare python3 start in the same guest)"
        )
        vm.send("b")
        vm.wait_for_boot(grub=False)

        with_times: list[float] = []
        without_times: list[float] = []
        for _ in range(args.rounds):
            vm.check(f"cp /boot/without-agent.img {initrd} && sync", timeout=300)
            without_times.append(boot_seconds(vm))
            vm.check(f"cp /boot/with-agent.img {initrd} && sync", timeout=300)
            with_times.append(boot_seconds(vm))
        w, wo = statistics.median(with_times), statistics.median(without_times)
        print(
            f"ordinary boot, GRUB entry -> root shell: without the agent {wo:.1f} s "
            f"{[round(t, 1) for t in without_times]}, with it {w:.1f} s {[round(t, 1) for t in with_times]}; "
            f"ratio {w / wo:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
