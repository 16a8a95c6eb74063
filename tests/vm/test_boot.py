"""The image boots through GRUB into its ZFS root, with the bootagent package installed as a user does."""

from __future__ import annotations

import json

import pytest

from testbed.layout import POOL, be_dataset
from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def test_boots_through_grub_with_the_packages_own_config(machine: Machine) -> None:
    """What a user gets: the package with its default config (`pool: auto`, nothing edited by the test bed),
    GRUB's menu made by the package's own update-grub, 10_linux kept quiet by the package, and the
    ordinary initramfs without the agent."""
    machine.start()
    machine.wait_for_grub()
    machine.expect("bootagent recovery menu", 30)
    machine.send("\r")
    machine.wait_for_boot(grub=False)
    # an ordinary boot with the package's premount script in its initramfs: not a word from bootagent
    assert "bootagent:" not in _from_banner(machine.tail(1 << 30))

    assert machine.check("findmnt -n -o SOURCE /").strip() == be_dataset("beta")
    assert machine.check("cat /etc/bootagent-testbed/marker").strip() == "beta"
    assert machine.check("zpool status -x").strip() == "all pools are healthy"
    assert machine.check("findmnt -n -o FSTYPE /boot/grub").strip() == "ext4"
    # the config is the package's conffile, untouched, and says `pool: auto`
    conffiles = machine.check("dpkg-query -W -f='${Conffiles}' bootagent")
    shipped = next(
        line.split()[1] for line in conffiles.splitlines() if "/etc/bootagent/bootagent.yaml" in line
    )
    assert machine.check("md5sum /etc/bootagent/bootagent.yaml").split()[0] == shipped
    assert "\npool: auto\n" in machine.check("cat /etc/bootagent/bootagent.yaml")
    # GRUB's menu: bootagent's entries, made from that config; 10_linux switched off by the package
    cfg = machine.check("cat /boot/grub/grub.cfg")
    assert f"### bootagent: the boot environments of pool {POOL} (bootagent grub-menu)" in cfg
    ours = cfg.split("### BEGIN /etc/grub.d/42_bootagent ###\n", 1)[1].split("### END", 1)[0]
    assert ours == machine.check("bootagent grub-menu 2>/dev/null")
    assert "### BEGIN /etc/grub.d/10_linux ###" not in cfg  # not run at all
    # /etc/default/grub's serial terminal is set up by 00_header (this whole boot ran on that serial line);
    # bootagent's block leaves terminals and timeouts to it, and its entries pass GRUB_CMDLINE_LINUX on
    header = cfg.split("### BEGIN /etc/grub.d/00_header ###\n", 1)[1].split("### END", 1)[0]
    set_up = [line.strip() for line in header.splitlines()]
    for line in ("serial --unit=0 --speed=115200", "terminal_input serial console"):
        assert line in set_up, header
    assert "terminal_output serial console" in set_up, header
    commands = [line.strip() for line in ours.splitlines()]
    owned = [c for c in commands if c.startswith(("serial", "terminal_", "set timeout", "timeout"))]
    # the one exception: at the boot-count limit with no agent image, the menu waits for a person
    assert owned == ["set timeout=-1"], owned
    kernels = [c for c in commands if c.startswith("linux")]
    assert kernels
    assert all("console=tty0 console=ttyS0,115200" in c for c in kernels), kernels
    override = machine.check("dpkg-statoverride --list /etc/grub.d/10_linux").split()
    assert override == ["root", "root", "644", "/etc/grub.d/10_linux"]
    machine.check("grub-script-check /boot/grub/grub.cfg")
    # no boot choice was ever written: GRUB booted the pool's bootfs; only the boot counter is there, and
    # this good boot set it back to 0
    env = machine.check("grub-editenv /boot/grub/grubenv list").split()
    assert sorted(env) == [
        "bootagent_once=",
        "bootagent_tries=0",
    ], env  # GRUB's default entry leaves once empty
    listed = json.loads(machine.check("bootagent list --json"))
    assert (listed["active"], listed["running"]) == ("beta", "beta")

    # the agent lives in its own image, loaded by the recovery entry only: the ordinary initramfs has the
    # premount script and no Python; every environment's /boot has the agent image, which does.
    # (the real file, not the /boot/initrd.img symlink: unmkinitramfs tests for zstd with `zstd -t`, which
    # skips symbolic links, and then reads the compressed file as plain cpio)
    ordinary = machine.check('lsinitramfs "$(readlink -f /boot/initrd.img)"', timeout=300).split()
    assert "scripts/init-premount/bootagent" in ordinary
    assert not [f for f in ordinary if "python3" in f or "dist-packages/bootagent" in f]
    agent = machine.check("zstd -dc /boot/bootagent.img | cpio -t 2>/dev/null", timeout=300).split()
    assert "usr/bin/python3" in agent
    assert "usr/lib/python3/dist-packages/bootagent/boot/main.pyc" in agent
    assert "etc/bootagent/initramfs.conf" in agent
    assert not [f for f in agent if f.startswith("usr/lib/modules")]
    for be in ("alpha", "gamma"):
        machine.check(f"mkdir -p /mnt/{be} && mount -t zfs -o zfsutil,ro {be_dataset(be)} /mnt/{be}")
        assert int(machine.check(f"stat -c %s /mnt/{be}/boot/bootagent.img").strip()) > 1_000_000
        machine.check(f"umount /mnt/{be}")


def _boot_console(machine: Machine) -> str:
    """Reboot into the default entry; return what the console showed from the kernel's banner to the shell."""
    before = len(machine.tail(1 << 30))
    machine.reboot()
    machine.wait_for_boot()
    return _from_banner(machine.tail(1 << 30)[before:])


def _from_banner(seen: str) -> str:
    banner = seen.find("Linux version")
    assert banner >= 0, seen[-3000:]
    return seen[banner:]


def test_an_ordinary_boot_with_the_hook_is_the_same_boot_plus_one_silent_script(booted: Machine) -> None:
    """The guest's ordinary initramfs as it was before the package was installed, and as the package's own
    update-initramfs left it: the only difference is the init-premount script. The one without it boots the
    same root (the one with it is every other scenario's, and the first one checks it says nothing)."""
    machine = booted
    release = machine.check("uname -r").strip()
    initrd = f"/boot/initrd.img-{release}"
    without_hook = "/root/initrd-before-bootagent.img"
    with_hook = set(machine.check(f"lsinitramfs {initrd}", timeout=300).split())
    without = set(machine.check(f"lsinitramfs {without_hook}", timeout=300).split())
    # nothing else in this image uses init-premount: the directory and the ORDER file mkinitramfs writes
    # for it come with the script
    assert with_hook - without == {
        "scripts/init-premount",
        "scripts/init-premount/ORDER",
        "scripts/init-premount/bootagent",
    }
    assert without - with_hook == set()

    machine.check(f"cp {without_hook} {initrd} && sync", timeout=300)
    console = _boot_console(machine)
    assert machine.check("findmnt -n -o SOURCE /").strip() == be_dataset("beta")
    assert "bootagent:" not in console, console[-3000:]
