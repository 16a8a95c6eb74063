"""Text of the files the test bed writes into the guest root (part of the root stage's key)."""

from __future__ import annotations

HOSTNAME = "bootagent-vm"
DEBCONF_SELECTIONS = "kexec-tools kexec-tools/load_kexec boolean false"
# One hostid for every boot of the image (helper and real), so the pool never looks foreign.
HOSTID = "0ba0b00d"

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SUITE = "bookworm"
BACKPORTS = "bookworm-backports"

APT_SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates {BACKPORTS}
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {SECURITY_MIRROR}
Suites: {SUITE}-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

DPKG_LEAN = """\
# bootagent test bed: keep the guest lean
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""

KERNEL_IMG_CONF = """\
# GRUB loads /boot/vmlinuz and /boot/initrd.img from inside each boot environment's dataset.
do_symlinks = yes
link_in_boot = yes
"""

INITRAMFS_CONF_SED = [
    ("MODULES=most", "MODULES=list"),
    ("COMPRESS=gzip", "COMPRESS=zstd"),
]

INITRAMFS_MODULES = """\
virtio_pci
virtio_blk
virtio_scsi
virtio_console
ext4
9p
9pnet_virtio
zfs
"""

SERIAL_AUTOLOGIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 --noclear %I $TERM
"""

FSTAB = """\
# GRUB's files and its WRITABLE grubenv live on the ext4 partition p2 (GRUB's save_env refuses ZFS).
# The root file system is the boot environment's ZFS dataset, mounted by the initramfs.
# nofail: without it the machine still boots (bootagent then refuses to change the boot choice). No short
# device timeout: under TCG on a busy host the partition can take longer than 20 s to show up, and the
# mount was then skipped without a word.
PARTLABEL=bootgrub /boot/grub ext4 defaults,nofail 0 2
"""

ROOT_BASHRC = """\
# bootagent test bed
PS1='\\u@\\h:\\w\\$ '
export TERM=${TERM:-vt220}
alias ls='ls --color=never'
"""

SYSCTL_QUIET = "kernel.printk = 3 4 1 3\n"

MASKED_UNITS = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-timesyncd.service",
    # the serial console is the only one; kexec-tools' boot-time load does nothing here (load_kexec false)
    "getty-static.service",
    "kexec-load.service",
]

# systemd-udev-settle waits for the whole udev queue: 16 of the 34 s of a boot's userspace under TCG. The
# only units that want it are OpenZFS's import and mount units, and the initramfs has imported the pool
# (the test bed has no other) before they run, so the guest does not wait for it.
UDEV_SETTLE_DROPIN = """\
# bootagent test bed: the root pool is imported by the initramfs; nothing here waits for udev to settle
[Service]
ExecStart=
ExecStart=/bin/true
"""

HELPER_INIT = """\
#!/bin/sh
# PID 1 of the test bed's helper boots (root = the guest root as ext4, read-only):
# run job.sh from the 9p share "share", store its exit code next to it, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /mnt
mkdir -p /mnt/share
modprobe 9pnet_virtio
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share
echo "testbed-helper: running job.sh"
sh -eux /mnt/share/job.sh </dev/null >/dev/console 2>&1
echo $? > /mnt/share/rc
sync
echo "testbed-helper: job exit code $(cat /mnt/share/rc); powering off"
umount /mnt/share
busybox poweroff -f
"""

# The empty package that satisfies zfs-initramfs' "zfs-modules | zfs-dkms": the modules are
# built once by DKMS in a separate chroot and untarred into the guest, so no compiler goes in.
ZFS_MODULES_CONTROL = """\
Package: zfs-modules-testbed
Version: 1.0
Architecture: all
Maintainer: bootagent test bed <root@localhost>
Provides: zfs-modules
Description: ZFS kernel modules prebuilt by the bootagent test bed (untarred, not packaged)
"""

# Module trees nobody in a QEMU guest needs.
PRUNE_MODULE_DIRS = [
    "kernel/drivers/gpu",
    "kernel/drivers/media",
    "kernel/drivers/net/wireless",
    "kernel/drivers/net/ethernet",
    "kernel/drivers/infiniband",
    "kernel/drivers/staging",
    "kernel/drivers/bluetooth",
    "kernel/drivers/isdn",
    "kernel/drivers/iio",
    "kernel/drivers/net/can",
    "kernel/drivers/net/usb",
    "kernel/drivers/usb/gadget",
    "kernel/drivers/hwmon",
    "kernel/drivers/mtd",
    "kernel/drivers/scsi/qla2xxx",
    "kernel/drivers/scsi/lpfc",
    "kernel/drivers/scsi/mpt3sas",
    "kernel/drivers/platform",
    "kernel/sound",
    "kernel/net/wireless",
    "kernel/net/mac80211",
    "kernel/net/bluetooth",
]

CONFIG_FILES = {
    "appliance.conf": "name=testbed\nserial=TB-0001\n",
    "network.conf": "mode=dhcp\n",
    "features.conf": "telemetry=off\nremote_support=on\n",
}
