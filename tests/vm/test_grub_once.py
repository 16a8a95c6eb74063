"""bootagent_once in grubenv boots a boot environment once; the next boot returns to the default."""

from __future__ import annotations

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def booted(machine: Machine) -> tuple[str, str]:
    return (
        machine.check("findmnt -n -o SOURCE /").strip(),
        machine.check("cat /etc/bootagent-testbed/marker").strip(),
    )


def test_once_boots_alpha_then_the_default_again(machine: Machine) -> None:
    machine.start()
    machine.wait_for_boot()
    assert booted(machine) == ("rpool/ROOT/beta", "beta")

    # the CLI's own `activate --once` replaces this later
    machine.check("grub-editenv /boot/grub/grubenv set bootagent_once=alpha")
    machine.reboot()
    machine.wait_for_boot()
    assert booted(machine) == ("rpool/ROOT/alpha", "alpha")
    env = machine.check("grub-editenv /boot/grub/grubenv list").split()
    assert "bootagent_once=alpha" not in env  # GRUB cleared it before booting
    assert "bootagent_default=beta" in env

    machine.reboot()
    machine.wait_for_boot()
    assert booted(machine) == ("rpool/ROOT/beta", "beta")


def test_gamma_boots_its_own_kernel(machine: Machine) -> None:
    machine.start()
    machine.wait_for_boot()
    beta_kernel = machine.check("uname -r").strip()
    machine.check("grub-editenv /boot/grub/grubenv set bootagent_once=gamma")
    machine.reboot()
    machine.wait_for_boot()
    assert machine.check("findmnt -n -o SOURCE /").strip() == "rpool/ROOT/gamma"
    gamma_kernel = machine.check("uname -r").strip()
    assert gamma_kernel != beta_kernel
    assert machine.check("zfs get -H -o value org.bootagent:kernel rpool/ROOT/gamma").strip() == gamma_kernel


def test_invalid_once_falls_back_to_the_persistent_default(machine: Machine) -> None:
    machine.start()
    machine.wait_for_boot()
    machine.check("grub-editenv /boot/grub/grubenv set bootagent_default=alpha bootagent_once=no-such-be")
    machine.reboot()
    machine.wait_for_boot()
    assert booted(machine) == ("rpool/ROOT/alpha", "alpha")
    env = machine.check("grub-editenv /boot/grub/grubenv list").split()
    assert "bootagent_once=no-such-be" not in env
    assert "bootagent_default=alpha" in env
