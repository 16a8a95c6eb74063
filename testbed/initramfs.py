"""Initramfs helpers for scenarios and benchmarks comparing the guest's image with and without bootagent."""

from __future__ import annotations

from testbed.machine import Machine

# the only piece of bootagent in the ordinary initramfs
PREMOUNT = "/usr/share/initramfs-tools/scripts/init-premount/bootagent"


def build_without_bootagent(machine: Machine, release: str, output: str) -> None:
    """mkinitramfs for `release` into `output` with bootagent's premount script set aside (and put back,
    whatever mkinitramfs does): the same guest's initramfs as if bootagent were not installed."""
    machine.check(
        f"mv {PREMOUNT} /root/premount.off && mkinitramfs -o {output} {release}; "
        f"rc=$?; mv /root/premount.off {PREMOUNT}; exit $rc",
        timeout=900,
    )
