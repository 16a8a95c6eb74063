"""The agent layer: the bootagent .deb installed into every boot environment, as a qcow2 layer over the disk.

Keyed by the .deb's sha256 and the disk image: a change to the agent costs one boot, not a new pool.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.build import REPO, Image
from testbed.cache import Artifact, artifact, building, key_of, source_of, stage_log
from testbed.machine import Machine
from testbed.run import CommandError, run, say

INSTALL_JOB = r"""
set -eux
DEB=/mnt/share/bootagent.deb
export DEBIAN_FRONTEND=noninteractive
# every initramfs is rebuilt below, in parallel, not one after another by the package's postinst
export BOOTAGENT_NO_INITRAMFS_UPDATE=1
dpkg --force-confold --force-confdef -i $DEB
hooks=$(dpkg -L bootagent | grep -c '^/usr/share/initramfs-tools/' || true)
booted=$(findmnt -n -o SOURCE /)
pool=${booted%%/*}
rm -f /tmp/initramfs-*
# every BE's initramfs is rebuilt in parallel (they are the slow part: ~75 s each under TCG)
for be in $(zfs list -H -o name -r -d 1 "$pool/ROOT" | grep "^$pool/ROOT/"); do
    [ "$be" = "$booted" ] && continue
    m=/mnt/be-${be##*/}
    mkdir -p $m
    mount -t zfs -o zfsutil "$be" $m
    dpkg --root=$m --force-confold --force-confdef -i $DEB
    if [ "$hooks" -gt 0 ]; then
        for d in dev proc sys; do mount --bind /$d $m/$d; done
        (chroot $m update-initramfs -u -k all >/tmp/initramfs-${be##*/}.log 2>&1;
         echo $? >/tmp/initramfs-${be##*/}.rc) &
    fi
done
if [ "$hooks" -gt 0 ]; then
    (update-initramfs -u -k all >/tmp/initramfs-booted.log 2>&1; echo $? >/tmp/initramfs-booted.rc) &
fi
wait
for log in /tmp/initramfs-*.log; do [ -e "$log" ] && cat "$log"; done
for rc in /tmp/initramfs-*.rc; do [ -e "$rc" ] && [ "$(cat "$rc")" = 0 ]; done
# update-initramfs's post-update hook built the agent's own image in every BE
for root in / /mnt/be-*; do
    if [ "$hooks" -gt 0 ] && [ -d "$root/boot" ] && [ ! -s "$root/boot/bootagent.img" ]; then
        echo "no $root/boot/bootagent.img" >&2
        exit 1
    fi
done
# GRUB's menu as the administrator of a bootagent machine sets it up, in every BE (bootagent runs update-grub
# from whichever BE is running): 10_linux and its friends know nothing of boot environments, so they are
# switched off; the menu is on the serial console. update-grub then runs 00_header and 42_bootagent.
for root in / /mnt/be-*; do
    [ -d "$root/etc/grub.d" ] || continue
    for s in 10_linux 20_linux_xen 30_os-prober 30_uefi-firmware; do
        if [ -e "$root/etc/grub.d/$s" ]; then chmod -x "$root/etc/grub.d/$s"; fi
    done
    mkdir -p "$root/etc/default"
    touch "$root/etc/default/grub"
    sed -i -e '/^GRUB_TERMINAL=/d' -e '/^GRUB_SERIAL_COMMAND=/d' -e '/^GRUB_TIMEOUT=/d' \
        "$root/etc/default/grub"
    cat >> "$root/etc/default/grub" <<'GRUB'
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_TIMEOUT=5
GRUB
done
for m in /mnt/be-*; do
    [ -d "$m" ] || continue
    for d in sys proc dev; do umount $m/$d 2>/dev/null || true; done
    umount $m
done
update-grub
grub-script-check /boot/grub/grub.cfg
grep -q "bootagent recovery menu" /boot/grub/grub.cfg
if grep -q "^menuentry 'Debian" /boot/grub/grub.cfg; then echo "10_linux entries in grub.cfg" >&2; exit 1; fi
sync
"""


@dataclass(frozen=True)
class AgentLayer:
    disk: Path
    deb_sha256: str
    artifact: Artifact


def build_deb(outdir: Path) -> Path:
    out = run([str(REPO / "packaging/build-deb.sh"), str(outdir)], timeout=300)
    return Path(out.strip().splitlines()[-1])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_agent_layer(image: Image) -> AgentLayer:
    scratch = Path(tempfile.mkdtemp(prefix="bootagent-deb-"))
    try:
        deb = build_deb(scratch)
        sha = sha256_of(deb)
        key = key_of(source_of(build_agent_layer), INSTALL_JOB, str(image.disk), sha)
        art = artifact("agent", key)
        if not art.done:
            started = time.monotonic()
            with building(art) as tmp:
                share = tmp / "share"
                share.mkdir()
                shutil.copyfile(deb, share / "bootagent.deb")
                (share / "install.sh").write_text(INSTALL_JOB)
                layer = tmp / "agent.qcow2"
                run(
                    [
                        "qemu-img",
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-b",
                        str(image.disk),
                        "-F",
                        "raw",
                        str(layer),
                    ]
                )
                machine = Machine(image.disk, tmp / "vm", share=share, overlay=layer)
                try:
                    machine.start()
                    machine.wait_for_boot()
                    code, output = machine.run(
                        "mkdir -p /mnt/share && mount -t 9p -o trans=virtio,version=9p2000.L share /mnt/share"
                        " && sh /mnt/share/install.sh && umount /mnt/share",
                        timeout=1200,
                    )
                    if code != 0:
                        raise CommandError(
                            ["install.sh"], f"installing the .deb failed ({code})", code, output
                        )
                    machine.poweroff(180)
                finally:
                    machine.close()
                    shutil.copyfile(machine.log_path, stage_log("agent-console"))
                shutil.rmtree(share)
                shutil.rmtree(tmp / "vm")
                (tmp / "deb.sha256").write_text(sha + "\n")
            say(f"agent layer built in {time.monotonic() - started:.0f} s")
        return AgentLayer(disk=art.path / "agent.qcow2", deb_sha256=sha, artifact=art)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
