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
from testbed.layout import default_layout
from testbed.machine import BOOT_TIMEOUT, Machine
from testbed.run import CommandError, retrying, run, say

INSTALL_TIMEOUT = 1800.0  # seconds for install.sh on the first try (about 300 s on 2 idle cores)

INSTALL_JOB = r"""
set -eux
DEB=/mnt/share/bootagent.deb
# where the time goes: one line per step, with the guest's clock
start=$(date +%s)
step() { echo "@@ agent layer: $1 at $(( $(date +%s) - start )) s"; }
export DEBIAN_FRONTEND=noninteractive
# every initramfs is rebuilt below, in parallel, not one after another by the package's postinst
export BOOTAGENT_NO_INITRAMFS_UPDATE=1
booted=$(findmnt -n -o SOURCE /)
pool=${booted%%/*}
# What the administrator of a machine run over a serial console writes into /etc/default/grub (Debian's own
# template with the serial terminal and the console on the kernel command line), in every boot environment.
# Nothing else about GRUB is set up here: the package keeps 10_linux from running and its postinst's
# update-grub makes the menu from these settings.
grub_defaults() {
    mkdir -p "$1/etc/default"
    cat > "$1/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB
}
grub_defaults /
# the booted environment's ordinary initramfs as it is before bootagent is installed, for the scenario that
# compares an ordinary boot with and without the package
cp "$(readlink -f /boot/initrd.img)" /root/initrd-before-bootagent.img
dpkg --force-confold --force-confdef -i $DEB
step "dpkg -i in the booted environment (with update-grub)"
hooks=$(dpkg -L bootagent | grep -c '^/usr/share/initramfs-tools/' || true)
rm -f /tmp/initramfs-*
# Every BE's images are what its own update-initramfs makes (the slow part under TCG: mkinitramfs ~3 min,
# bootagent-mkinitrd ~2 min), but the guest's two CPUs only build what differs:
# - beta (booted): update-initramfs, which runs bootagent-mkinitrd from its post-update hook;
# - a BE with other kernels (gamma): mkinitramfs for each of them, in parallel; its agent image is the
#   booted one's (the image holds no kernel modules: same package, same Python, same config);
# - a BE made from the same root with the same kernels (alpha: beta was received from it): copies of the
#   booted one's images, which are byte for byte what its own update-initramfs would make.
kernels() { ls "$1/lib/modules" | sort | tr '\n' ' '; }
copies=""
others=""
for be in $(zfs list -H -o name -r -d 1 "$pool/@ROOT@" | grep "^$pool/@ROOT@/"); do
    [ "$be" = "$booted" ] && continue
    m=/mnt/be-${be##*/}
    mkdir -p $m
    mount -t zfs -o zfsutil "$be" $m
    grub_defaults $m
    dpkg --root=$m --force-confold --force-confdef -i $DEB
    step "dpkg -i in $be"
    [ "$hooks" -gt 0 ] || continue
    if [ "$(kernels $m)" = "$(kernels /)" ] && cmp -s $m/etc/initramfs-tools/initramfs.conf \
        /etc/initramfs-tools/initramfs.conf; then
        copies="$copies $m"
        continue
    fi
    others="$others $m"
    for d in dev proc sys; do mount --bind /$d $m/$d; done
    for k in $(kernels $m); do
        (chroot $m mkinitramfs -o /boot/initrd.img-$k $k >/tmp/initramfs-${be##*/}-$k.log 2>&1;
         echo $? >/tmp/initramfs-${be##*/}-$k.rc) &
    done
done
if [ "$hooks" -gt 0 ]; then
    (update-initramfs -u -k all >/tmp/initramfs-booted.log 2>&1; echo $? >/tmp/initramfs-booted.rc) &
fi
wait
for m in $copies; do
    for k in $(kernels /); do cp /boot/initrd.img-$k $m/boot/initrd.img-$k; done
done
for m in $copies $others; do
    cp /boot/bootagent.img $m/boot/bootagent.img
done
step "update-initramfs in every environment (in parallel)"
for log in /tmp/initramfs-*.log; do [ -e "$log" ] && cat "$log"; done
for rc in /tmp/initramfs-*.rc; do [ -e "$rc" ] && [ "$(cat "$rc")" = 0 ]; done
# every BE has the agent's own image
for root in / /mnt/be-*; do
    if [ "$hooks" -gt 0 ] && [ -d "$root/boot" ] && [ ! -s "$root/boot/bootagent.img" ]; then
        echo "no $root/boot/bootagent.img" >&2
        exit 1
    fi
    # the package itself switched 10_linux off, the Debian way
    override=$(dpkg-statoverride --root=$root --list /etc/grub.d/10_linux)
    [ "$override" = "root root 644 /etc/grub.d/10_linux" ]
done
for m in /mnt/be-*; do
    [ -d "$m" ] || continue
    for d in sys proc dev; do if mountpoint -q $m/$d; then umount $m/$d; fi; done
    umount $m
done
# the menu the package's postinst made with update-grub
grub-script-check /boot/grub/grub.cfg
grep -q "bootagent recovery menu" /boot/grub/grub.cfg
if grep -q "^### BEGIN /etc/grub.d/10_linux ###" /boot/grub/grub.cfg; then echo "10_linux ran" >&2; exit 1; fi
step "checked"
# the factory baseline, sealed as a vendor's image build would: the installed system and its config
bootagent factory seal --release testbed-1
bootagent factory list
step "factory baseline sealed"
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
        key = key_of(source_of(build_agent_layer), INSTALL_JOB, default_layout(), str(image.disk), sha)
        art = artifact("agent", key)
        if not art.done:
            started = time.monotonic()
            with building(art) as tmp:
                share = tmp / "share"
                share.mkdir()
                shutil.copyfile(deb, share / "bootagent.deb")
                (share / "install.sh").write_text(INSTALL_JOB.replace("@ROOT@", default_layout().root))
                layer = tmp / "agent.qcow2"

                def attempt(number: int) -> None:
                    # a guest on a busy machine may need far longer than on an idle one: each try gets
                    # more time, from a fresh layer
                    layer.unlink(missing_ok=True)
                    shutil.rmtree(tmp / "vm", ignore_errors=True)
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
                        machine.wait_for_boot(BOOT_TIMEOUT * number)
                        code, output = machine.run(
                            "mkdir -p /mnt/share && mount -t 9p -o trans=virtio,version=9p2000.L share"
                            " /mnt/share && sh /mnt/share/install.sh && umount /mnt/share",
                            timeout=INSTALL_TIMEOUT * number,
                        )
                        if code != 0:
                            raise CommandError(
                                ["install.sh"], f"installing the .deb failed ({code})", code, output
                            )
                        machine.poweroff(300 * number)
                    finally:
                        machine.close()
                        shutil.copyfile(machine.log_path, stage_log("agent-console"))

                retrying("the agent layer's guest (boot, dpkg -i, initramfs in every environment)", attempt)
                shutil.rmtree(share)
                shutil.rmtree(tmp / "vm")
                (tmp / "deb.sha256").write_text(sha + "\n")
            say(f"agent layer built in {time.monotonic() - started:.0f} s")
        return AgentLayer(disk=art.path / "agent.qcow2", deb_sha256=sha, artifact=art)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
