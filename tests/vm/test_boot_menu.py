"""The early-boot menu, driven over the serial console from GRUB's "bootagent recovery menu" entry.

Keys are the ones a person on a serial line without arrow keys uses: row digits, letters, Enter, y.
"""

from __future__ import annotations

import re
import time

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

MENU = "bootagent boot menu - pool rpool"
RECOVERY_ENTRY = 1  # 0: the default entry, 1: the recovery menu (grub.d/42_bootagent)


def open_menu(machine: Machine) -> float:
    """From power-on (or a reboot) to the drawn menu; returns seconds from the GRUB entry to the menu."""
    machine.wait_for_grub()
    time.sleep(0.5)
    machine.choose_grub_entry(RECOVERY_ENTRY)
    started = time.monotonic()
    machine.expect(MENU, 300)
    machine.expect("Press any key to stop the countdown", 60)
    return time.monotonic() - started


def keys(machine: Machine, *sequence: str) -> None:
    for key in sequence:  # one at a time, as a person on a slow line would
        machine.send(key)
        time.sleep(0.7)


def booted_into(machine: Machine) -> tuple[str, str, str]:
    return (
        machine.check("findmnt -n -o SOURCE /").strip(),
        machine.check("cat /etc/bootagent-testbed/marker").strip(),
        machine.check("cat /etc/bootagent-testbed/step").strip(),
    )


def test_boot_another_environment_from_the_menu(machine: Machine) -> None:
    machine.start()
    seconds = open_menu(machine)
    print(f"GRUB entry -> drawn menu: {seconds:.1f} s")
    keys(machine, "1", "b")  # row 1 is alpha (oldest first)
    machine.wait_for_boot(grub=False)
    assert booted_into(machine) == ("rpool/ROOT/alpha", "alpha", "4")
    # nothing was changed: the default is still beta, and the pool was handed over healthy
    assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta"
    assert machine.check("zpool status -x").strip() == "all pools are healthy"


def test_boot_a_snapshot_as_a_new_environment(machine: Machine) -> None:
    machine.start()
    open_menu(machine)
    # 2 = beta; + expands it: 3 = beta@s1, 4 = beta@s2, 5 = beta@s3; Enter on a snapshot asks, y confirms
    keys(machine, "2", "+", "4", "\r", "\r")
    machine.expect("Boot snapshot beta@s2", 30)
    keys(machine, "y")
    machine.wait_for_boot(grub=False)
    root, marker, step = booted_into(machine)
    assert root.startswith("rpool/ROOT/beta-s2")
    assert (marker, step) == ("beta", "2")
    assert machine.check(f"zfs get -H -o value origin {root}").strip() == "rpool/ROOT/beta@s2"
    # the snapshot is still there, still the origin, and still holds its own state
    assert "rpool/ROOT/beta@s2" in machine.check("zfs list -H -o name -t snapshot rpool/ROOT/beta")
    machine.check("mkdir -p /mnt/s2 && mount -t zfs rpool/ROOT/beta@s2 /mnt/s2")
    assert machine.check("cat /mnt/s2/etc/bootagent-testbed/step").strip() == "2"
    # (beta@s2 predates the bootagent package, so the new environment has no CLI: read the journal itself)
    journal = machine.check('grep \'"action": "create"\' /var/lib/bootagent/journal.jsonl')
    assert '"actor": "agent"' in journal
    assert '"target": "beta-s2"' in journal


@pytest.mark.boots(2)
def test_roll_back_two_steps_then_forward_again(booted: Machine) -> None:
    machine = booted
    for step, name in ((5, "c1"), (6, "c2")):  # two checkpoints, then a newer state
        machine.check(f"echo {step} > /etc/bootagent-testbed/step && bootagent checkpoint -n {name}")
    machine.check("echo 7 > /etc/bootagent-testbed/step")
    machine.reboot()
    open_menu(machine)
    # 2 = beta; r opens its history: 1 = beta@c2, 2 = beta@c1; Enter after the digit confirms the row,
    # the next Enter rolls back (non-destructive: a new environment)
    keys(machine, "2", "r", "2", "\r", "\r")
    machine.expect("the new environment beta-c1 is now the default", 300)
    # keys typed while the menu is busy are dropped; wait for the list read again, beta-c1 selected
    machine.expect(re.escape("beta-c1  [active (default)]"), 300)
    keys(machine, "b")
    machine.wait_for_boot(grub=False)
    assert booted_into(machine) == ("rpool/ROOT/beta-c1", "beta", "5")
    assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta-c1"
    grubenv = machine.check("grub-editenv /boot/grub/grubenv list")
    assert "bootagent_default=beta-c1" in grubenv, machine.check("dmesg | grep bootagent: || true")

    # roll forward from the menu: select beta-c1 (row 4: alpha, beta, gamma, beta-c1), f, y
    machine.reboot()
    open_menu(machine)
    keys(machine, "4", "f")
    machine.expect("Roll beta-c1 forward", 30)
    keys(machine, "y")
    machine.expect("beta-c1 was rolled forward to beta: beta is now the default", 300)
    machine.expect(re.escape("beta  [active (default)]"), 300)  # the list read again, beta selected
    keys(machine, "b")
    machine.wait_for_boot(grub=False)
    assert booted_into(machine) == ("rpool/ROOT/beta", "beta", "7")
    assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta"


def test_environment_with_another_kernel_boots_its_own_kernel(booted: Machine) -> None:
    machine = booted
    running = machine.check("uname -r").strip()
    gamma_kernel = machine.check("zfs get -H -o value org.bootagent:kernel rpool/ROOT/gamma").strip()
    assert gamma_kernel != running
    machine.reboot()
    open_menu(machine)
    keys(machine, "3", "b")  # gamma
    machine.expect(re.escape(f"starting its own kernel {gamma_kernel}"), 120)
    machine.wait_for_boot(grub=False)
    assert machine.check("findmnt -n -o SOURCE /").strip() == "rpool/ROOT/gamma"
    assert machine.check("uname -r").strip() == gamma_kernel
    assert "bootagent.kexec=1" in machine.check("cat /proc/cmdline")
