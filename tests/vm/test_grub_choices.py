"""The boot choices GRUB follows: a next-boot-only trial, hand-edited grubenv values that name nothing, the
persistent default, and an environment with its own kernel -- one guest, one reboot for each."""

from __future__ import annotations

import json

import pytest

from testbed.layout import POOL, be_dataset
from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def booted_into(machine: Machine) -> tuple[str, str]:
    return (
        machine.check("findmnt -n -o SOURCE /").strip(),
        machine.check("cat /etc/bootagent-testbed/marker").strip(),
    )


def grubenv(machine: Machine) -> list[str]:
    return machine.check("grub-editenv /boot/grub/grubenv list").split()


def reboot(machine: Machine) -> None:
    machine.reboot()
    machine.wait_for_boot()


@pytest.mark.boots(3)
def test_once_then_default_then_invalid_values_then_another_kernel(booted: Machine) -> None:
    m = booted
    beta_kernel = m.check("uname -r").strip()

    # a trial: alpha boots once, GRUB clears the choice before booting it
    m.check("bootagent activate alpha --once")
    assert "bootagent_once=alpha" in grubenv(m)
    assert m.check(f"zpool get -H -o value bootfs {POOL}").strip() == be_dataset("beta")
    reboot(m)
    assert booted_into(m) == (be_dataset("alpha"), "alpha")
    assert "bootagent_once=alpha" not in grubenv(m)

    # values edited by hand: a next-boot choice that names no environment falls back to the default (beta:
    # the trial did not stick), a default that is not a name at all falls back to the pool's bootfs, and
    # GRUB clears the one-shot choice all the same
    m.check("grub-editenv /boot/grub/grubenv set 'bootagent_default=x;reboot' bootagent_once=no-such-be")
    reboot(m)
    assert booted_into(m) == (be_dataset("beta"), "beta")
    env = grubenv(m)
    assert "bootagent_once=no-such-be" not in env

    # the persistent default: gamma, which carries another kernel, boots that kernel of its own
    m.check("bootagent activate gamma")
    assert m.check(f"zpool get -H -o value bootfs {POOL}").strip() == be_dataset("gamma")
    assert "bootagent_default=gamma" in grubenv(m)
    reboot(m)
    assert booted_into(m) == (be_dataset("gamma"), "gamma")
    gamma_kernel = m.check("uname -r").strip()
    assert gamma_kernel != beta_kernel
    assert m.check(f"zfs get -H -o value org.bootagent:kernel {be_dataset('gamma')}").strip() == gamma_kernel
    assert json.loads(m.check("bootagent list --json"))["active"] == "gamma"
