"""Environments made by hand with `zfs` (outside bootagent), with a space and with a ':' in their names, and
/etc/default/grub with extra kernel arguments: from GRUB, the command line and the recovery menu, each boots
exactly that environment (its marker file says which) or is refused with the reason -- never another one."""

from __future__ import annotations

import time

import pytest

from testbed.layout import POOL, be_dataset
from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

SPACE, COLON = "my test", "a:b"
MENU = "bootagent boot menu - pool"
# /etc/default/grub as a careless administrator might extend it: a quoted argument, a ';' that must stay
# part of an argument and never become a GRUB command
EXTRA = 'GRUB_CMDLINE_LINUX_DEFAULT="bootagent_vm_probe=1 probe.quoted=\\"two words\\" probe.semi=a;reboot"'


def booted_into(machine: Machine) -> tuple[str, str]:
    return (
        machine.check("findmnt -n -o SOURCE /").strip(),
        machine.check("cat /etc/bootagent-testbed/marker").strip(),
    )


def make_by_hand(machine: Machine, name: str, marker: str) -> None:
    """A clone of the running system with its own marker, as an administrator makes one with zfs alone."""
    dataset = be_dataset(name)
    machine.check(f"zfs snapshot '{be_dataset('beta')}@hand-{marker}'")
    machine.check(
        f"zfs clone -o canmount=noauto -o mountpoint=/ '{be_dataset('beta')}@hand-{marker}' '{dataset}'"
    )
    machine.check(
        f"mkdir -p /mnt/hand && mount -t zfs -o zfsutil '{dataset}' /mnt/hand"
        f" && echo {marker} > /mnt/hand/etc/bootagent-testbed/marker && umount /mnt/hand"
    )


def test_hand_made_names_boot_exactly_themselves_or_are_refused(booted: Machine) -> None:
    m = booted
    make_by_hand(m, SPACE, "space")
    make_by_hand(m, COLON, "colon")
    m.check(f"echo '{EXTRA}' >> /etc/default/grub")

    # GRUB's menu: the ':' one gets its entry, the space one a warning that says why; a bootfs with a space
    # does not drop the menu
    out = m.check("update-grub 2>&1", timeout=600)
    assert f"'{SPACE}' gets no GRUB entry: it contains a space" in out
    cfg = m.check("cat /boot/grub/grub.cfg")
    m.check("grub-script-check /boot/grub/grub.cfg")
    assert f"--id bootagent-be-{COLON}" in cfg
    assert SPACE not in cfg
    assert "'probe.semi=a;reboot'" in cfg  # one quoted kernel argument, not a command
    m.check(f"zpool set bootfs='{be_dataset(SPACE)}' {POOL}")
    menu = m.check("bootagent grub-menu 2>&1")
    assert "set bootagent_fallback=alpha" in menu
    assert "the pool's bootfs names" in menu
    m.check(f"zpool set bootfs={be_dataset('beta')} {POOL}")

    # the command line: the space one is refused before anything changes, the ':' one boots, with the
    # administrator's arguments exactly as written
    code, out = m.run(f"bootagent activate '{SPACE}' --once")
    assert code == 2, out
    assert "contains a space" in out
    # (GRUB's default entry leaves the one-shot choice empty after every boot it makes)
    assert [
        v for v in m.check("grub-editenv /boot/grub/grubenv list").split() if v.startswith("bootagent_once")
    ] in (
        [],
        ["bootagent_once="],
    )
    m.check(f"bootagent activate {COLON} --once")
    m.reboot()
    m.wait_for_boot()
    assert booted_into(m) == (be_dataset(COLON), "colon")
    cmdline = m.check("cat /proc/cmdline")
    assert f"root=ZFS={be_dataset(COLON)} " in cmdline
    assert 'bootagent_vm_probe=1 "probe.quoted=two words" probe.semi=a;reboot' in cmdline
    assert "console=ttyS0,115200" in cmdline

    # GRUB: the ':' one's own entry, in the submenu of all environments (alpha, beta, gamma, a:b; the one
    # with a space has none)
    m.reboot()
    m.wait_for_grub()
    time.sleep(0.5)
    m.choose_grub_entry(2)  # the submenu
    m.expect("boot environment alpha", 30)
    time.sleep(0.5)
    m.choose_grub_entry(3)
    m.wait_for_boot(grub=False)
    assert booted_into(m) == (be_dataset(COLON), "colon")

    # the recovery menu lists both; the space one is refused with the reason, the ':' one boots
    # (rows: alpha, beta, gamma, my test, a:b -- oldest first)
    m.reboot()
    m.wait_for_grub()
    time.sleep(0.5)
    m.choose_grub_entry(1)
    m.expect(MENU, 300)
    m.expect("Press any key to stop the countdown", 60)
    for key in ("4", "b"):
        m.send(key)
        time.sleep(0.7)
    m.expect("contains a space", 60)
    for key in ("5", "b"):
        m.send(key)
        time.sleep(0.7)
    m.wait_for_boot(grub=False)
    assert booted_into(m) == (be_dataset(COLON), "colon")
