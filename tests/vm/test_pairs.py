"""Boot-environment pairs against real OpenZFS: the HOWTO's two pools -- a GRUB-compatible boot pool with
BOOT/<name> at /boot and an encrypted root pool with ROOT/<name> at / -- made on file vdevs in the guest, and
bootagent's own verbs (with its default config, only the pool named) checkpointing, rolling back two steps,
rolling forward and destroying the pair as one, `/` and `/boot` always from the same state.

This machine kind boots from its single pool, so nothing here is booted: the GRUB entries are checked as
text (grub-script-check), the booting of a pair waits for the UEFI/two-pool machine kind of the test bed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

PASSPHRASE = "correct horse battery staple"
CONFIG = "/root/howto.yaml"
# what an administrator of such a machine writes: the pool (the running root is not on it here), where the
# writable grubenv is, and no update-grub (this guest's own menu is not the one of these pools)
CONFIG_TEXT = "pool: hrpool\ngrubenv: /boot/grub/howto-grubenv\ngrub_update: false\n"
SETUP = f"""
set -e
truncate -s 256M /var/tmp/hb.img
truncate -s 512M /var/tmp/hr.img
zpool create -o compatibility=grub2 -O canmount=off -O mountpoint=none -O devices=off hbpool /var/tmp/hb.img
echo '{PASSPHRASE}' | zpool create -O encryption=on -O keyformat=passphrase -O keylocation=prompt \\
    -O canmount=off -O mountpoint=none hrpool /var/tmp/hr.img
zfs create -o canmount=off -o mountpoint=none hrpool/ROOT
zfs create -o canmount=noauto -o mountpoint=/ hrpool/ROOT/debian
zfs create -o canmount=off -o mountpoint=none hbpool/BOOT
zfs create -o canmount=noauto -o mountpoint=/boot hbpool/BOOT/debian
zfs create -o mountpoint=/var/lib/bootagent-howto hrpool/bootagent
cp /boot/grub/grubenv /boot/grub/howto-grubenv
printf '{CONFIG_TEXT}' > {CONFIG}
"""


def ba(m: Machine, args: str, *, code: int = 0) -> str:
    rc, out = m.run(f"bootagent --config {CONFIG} {args}", timeout=300)
    assert rc == code, f"bootagent {args} exited {rc}, expected {code}:\n{out}"
    return out


def ba_json(m: Machine, args: str) -> Any:
    rc, out = m.run(f"bootagent --config {CONFIG} {args} --json 2>/dev/null", timeout=300)
    assert rc == 0, out
    return json.loads(out)


def step_of(m: Machine, env: str) -> tuple[str, str]:
    """(/etc/step, /boot/step) of an environment, as `bootagent mount` shows it: the pair, both halves."""
    where = ba_json(m, f"mount {env}")["path"]
    try:
        return (
            m.check(f"cat {where}/etc/step").strip(),
            m.check(f"cat {where}/boot/step").strip(),
        )
    finally:
        ba(m, f"umount {env}")


def write_state(m: Machine, step: int) -> None:
    m.check(
        "set -e; mkdir -p /mnt/hr /mnt/hb; "
        "mount -t zfs -o zfsutil hrpool/ROOT/debian /mnt/hr; "
        "mount -t zfs -o zfsutil hbpool/BOOT/debian /mnt/hb; "
        f"mkdir -p /mnt/hr/etc /mnt/hr/boot; echo {step} > /mnt/hr/etc/step; echo {step} > /mnt/hb/step; "
        f"echo kernel-{step} > /mnt/hb/vmlinuz-6.1.0-{step}-amd64; umount /mnt/hb; umount /mnt/hr"
    )


@pytest.mark.boots(0)
def test_the_howto_pair_is_checkpointed_rolled_back_and_forward_as_one(booted: Machine) -> None:
    m = booted
    m.check(SETUP, timeout=300)
    try:
        data = ba_json(m, "list")
        assert data["boot_container"] == "hbpool/BOOT"  # found by the default 'boot_pool: auto'
        [debian] = data["environments"]
        assert (debian["boot_dataset"], debian["missing_half"]) == ("hbpool/BOOT/debian", None)

        for step in (1, 2, 3):
            write_state(m, step)
            ba(m, f"checkpoint debian --name s{step} --description 'step {step}'")
        write_state(m, 4)
        for step in (1, 2, 3):
            marks = {
                m.check(f"zfs get -H -o value org.bootagent:pair {pool}/debian@s{step}").strip()
                for pool in ("hrpool/ROOT", "hbpool/BOOT")
            }
            assert len(marks) == 1, marks  # one mark, the same on both halves
            assert "-" not in marks
            assert m.check(
                f"zfs get -H -o value org.bootagent:description hbpool/BOOT/debian@s{step}"
            ).strip() == (f"step {step}")

        # two steps back: a new pair from @s2, both halves
        back = ba_json(m, "rollback debian --steps 2")
        new = back["environment"]
        assert back["target"] == "debian@s2"
        assert m.check(f"zfs get -H -o value origin hbpool/BOOT/{new}").strip() == "hbpool/BOOT/debian@s2"
        assert m.check(f"zfs get -H -o value canmount,mountpoint hbpool/BOOT/{new}").split() == [
            "noauto",
            "/boot",
        ]
        assert step_of(m, new) == ("2", "2")
        # the encrypted root's clone keeps its encryption root (and so the one passphrase)
        assert m.check(f"zfs get -H -o value encryptionroot,keystatus hrpool/ROOT/{new}").split() == [
            "hrpool",
            "available",
        ]
        assert ba_json(m, "list")["active"] == new

        # one step forward: @s3, both halves
        forward = ba_json(m, f"rollforward {new} --steps 1")
        assert step_of(m, forward["environment"]) == ("3", "3")

        # a missing half: shown with the reason, never cloned
        m.check("zfs destroy hbpool/BOOT/debian@s1")
        listing = ba(m, "list --snapshots")
        assert "debian@s1: NOT BOOTABLE, its /boot half hbpool/BOOT/debian@s1 does not exist" in listing
        before = m.check("zfs list -H -o name -t all -r hrpool hbpool")
        out = ba(m, "rollback debian --to s1", code=5)
        assert "debian@s1 is half a boot environment" in out
        assert m.check("zfs list -H -o name -t all -r hrpool hbpool") == before  # nothing changed

        # GRUB's entries read the kernels from the boot halves (valid GRUB script)
        ba(m, f"activate {forward['environment']}")
        m.check(f"bootagent --config {CONFIG} grub-menu > /root/howto.cfg 2>/root/howto.err")
        menu = m.check("cat /root/howto.cfg")
        assert "search --no-floppy --label --set=bootagent_bootdev hbpool" in menu
        assert f"/BOOT/{new}@/vmlinuz" in menu
        assert f"/ROOT/{new}@/boot/vmlinuz" not in menu
        m.check("grub-script-check /root/howto.cfg")

        # destroying a pair takes both halves
        ba(m, f"destroy {new} --yes")
        assert m.run(f"zfs list hrpool/ROOT/{new}")[0] != 0
        assert m.run(f"zfs list hbpool/BOOT/{new}")[0] != 0
    finally:
        m.run("zpool destroy -f hbpool; zpool destroy -f hrpool; rm -f /var/tmp/hb.img /var/tmp/hr.img")
