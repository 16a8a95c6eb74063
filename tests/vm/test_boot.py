"""The image boots through GRUB into its ZFS root, with bootagent installed."""

from __future__ import annotations

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def test_boots_through_grub_into_the_active_boot_environment(machine: Machine) -> None:
    machine.start()
    machine.wait_for_grub()
    machine.expect("bootagent recovery menu", 30)
    machine.send("\r")
    machine.wait_for_boot(grub=False)

    assert machine.check("findmnt -n -o SOURCE /").strip() == "rpool/ROOT/beta"
    assert machine.check("cat /etc/bootagent-testbed/marker").strip() == "beta"
    assert machine.check("zpool status -x").strip() == "all pools are healthy"
    assert machine.check("findmnt -n -o FSTYPE /boot/grub").strip() == "ext4"
    assert "bootagent_default=beta" in machine.check("grub-editenv /boot/grub/grubenv list")
    code, output = machine.run("bootagent --help")
    assert code == 0, output
