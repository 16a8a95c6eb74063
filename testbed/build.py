"""Build the test bed's disk image from Debian packages only, stage by stage, cached.

Stages (each a directory ``<name>-<key>`` under the cache, published by rename):

  base            debootstrap minbase (main, contrib) + apt sources incl. backports
  zfs-modules-K   OpenZFS (backports) built by DKMS in a chroot for guest kernel K, as a tarball
  root            the guest root tree: primary kernel, systemd, ZFS userland, python3 libs, ...
  gamma           the root with the OTHER kernel (backports) instead, as an ext4 image
  helper          the root as an ext4 image + its kernel and initrd (boots directly, no GRUB)
  disk            the 6 GiB raw disk: GPT, BIOS GRUB, ext4 /boot/grub, the ZFS pool (made in a guest)
  agent           (testbed.agent) a qcow2 layer over the disk with the bootagent .deb installed
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed import guestfiles as gf
from testbed.cache import Artifact, artifact, building, copy_tree, key_of, remove_tree, source_of, stage_log
from testbed.layout import POOL, default_layout
from testbed.run import CommandError, run, say

REPO = Path(__file__).resolve().parent.parent
DISK_SIZE = 6 * 1024**3
SECTOR = 512
# GPT layout (sectors): p1 BIOS boot 1 MiB, p2 ext4 256 MiB (GRUB + grubenv), p3 the pool.
P1 = (2048, 4095)
P2 = (4096, 4096 + 256 * 2048 - 1)
P3_START = P2[1] + 1
DISK_SERIAL = "bootagent0"
BE_NAMES = ("alpha", "beta", "gamma")
ACTIVE_BE = "beta"
# The layout the package's own default config expects (the image is built for it; nothing here repeats it).
LAYOUT = default_layout()

GUEST_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "zstd",
    "busybox",
    "python3",
    "python3-pyudev",
    "python3-blessed",
    "python3-yaml",
    "kexec-tools",
    "grub-pc-bin",
    "grub2-common",
    "e2fsprogs",
    "procps",
    "less",
    "util-linux",
    "mount",
    # the export scenarios: one guest sends to a second over ssh (sshd is disabled until a scenario
    # starts it, so an ordinary boot does not pay for it)
    "openssh-server",
    "openssh-client",
]
GUEST_BACKPORTS_PACKAGES = ["zfsutils-linux", "zfs-initramfs", "python3-pyzfs"]


# ---------------------------------------------------------------- apt on the host: versions for keys


def apt_candidates(packages: list[str], release: str | None = None) -> list[str]:
    """Candidate versions (one apt-cache call for all of them)."""
    argv = ["apt-cache"] + (["-t", release] if release else []) + ["policy", *packages]
    found: dict[str, str] = {}
    current = ""
    for line in run(argv, timeout=120).splitlines():
        header = re.match(r"^(\S+):$", line)
        if header:
            current = header.group(1)
        cand = re.match(r"^\s+Candidate:\s*(\S+)", line)
        if cand and current:
            found[current] = cand.group(1)
    missing = [p for p in packages if found.get(p, "(none)") == "(none)"]
    if missing:
        raise CommandError(argv, f"no candidate version of {missing} (is apt's list current?)")
    return [found[p] for p in packages]


def apt_candidate(package: str, release: str | None = None) -> str:
    return apt_candidates([package], release)[0]


def kernel_abi(release: str | None = None) -> str:
    """The kernel ABI (e.g. 6.1.0-56-amd64) the metapackage linux-image-amd64 points to."""
    argv = ["apt-cache"] + (["-t", release] if release else []) + ["depends", "linux-image-amd64"]
    match = re.search(r"Depends:\s*linux-image-(\S+-amd64)", run(argv, timeout=120))
    if not match:
        raise CommandError(argv, "cannot read the kernel ABI from linux-image-amd64")
    return match.group(1)


# ---------------------------------------------------------------- chroot


@contextmanager
def chroot_env(root: Path) -> Iterator[None]:
    """proc/sys/dev mounted, resolv.conf, services never started; all undone on exit."""
    mounted: list[Path] = []
    policy = root / "usr/sbin/policy-rc.d"
    try:
        for fstype, src, rel in (
            ("proc", "proc", "proc"),
            ("sysfs", "sysfs", "sys"),
            ("bind", "/dev", "dev"),
            ("devpts", "devpts", "dev/pts"),
        ):
            target = root / rel
            target.mkdir(parents=True, exist_ok=True)
            argv = (
                ["mount", "--bind", src, str(target)]
                if fstype == "bind"
                else ["mount", "-t", fstype, src, str(target)]
            )
            run(argv)
            mounted.append(target)
        resolv = root / "etc/resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        shutil.copyfile("/etc/resolv.conf", resolv)
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        yield
    finally:
        policy.unlink(missing_ok=True)
        for target in reversed(mounted):
            run(["umount", "-l", str(target)], check=False)
        (root / "etc/resolv.conf").unlink(missing_ok=True)


def in_chroot(root: Path, *argv: str, log: Path, timeout: float = 1800, check: bool = True) -> str:
    env = {
        "DEBIAN_FRONTEND": "noninteractive",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "TMPDIR": "/tmp",
    }
    with log.open("a") as fh:
        fh.write(f"\n### chroot: {' '.join(argv)}\n")
    return run(["chroot", str(root), *argv], env=env, log=log, timeout=timeout, check=check)


def apt_install(root: Path, packages: list[str], log: Path, release: str | None = None) -> None:
    argv = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]
    if release:
        argv += ["-t", release]
    in_chroot(root, *argv, *packages, log=log)


# ---------------------------------------------------------------- stages


@dataclass(frozen=True)
class Kernels:
    primary: str
    other: str


def resolve_kernels() -> Kernels:
    return Kernels(primary=kernel_abi(), other=kernel_abi(gf.BACKPORTS))


def stage_base() -> Artifact:
    debootstrap = run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"])
    key = key_of(
        source_of(stage_base),
        gf.APT_SOURCES,
        gf.DPKG_LEAN,
        debootstrap,
        apt_candidate("base-files"),
        apt_candidate("libc6"),
    )
    art = artifact("base", key)
    if art.done:
        return art
    log = stage_log("base")
    with building(art) as tmp:
        root = tmp / "root"
        run(
            ["debootstrap", "--variant=minbase", "--components=main,contrib", gf.SUITE, root, gf.MIRROR],
            log=log,
            timeout=1800,
        )
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(gf.APT_SOURCES)
        (root / "etc/dpkg/dpkg.cfg.d/01-bootagent-lean").write_text(gf.DPKG_LEAN)
        with chroot_env(root):
            in_chroot(root, "apt-get", "update", "-q", log=log)
    return art


def stage_modules(base: Artifact, kver: str, release: str | None) -> Artifact:
    zfs = apt_candidate("zfs-dkms", gf.BACKPORTS)
    headers = apt_candidate(f"linux-headers-{kver}", release)
    key = key_of(source_of(stage_modules), base.key, kver, zfs, headers)
    art = artifact(f"zfs-modules-{kver}", key)
    if art.done:
        return art
    log = stage_log(art.name)
    with building(art) as tmp:
        root = tmp / "chroot"
        copy_tree(base.path / "root", root)
        # Only the modules leave this chroot: no initramfs update for it (dkms' trigger would make one).
        # (Building without debug information, KCFLAGS=-g0, would be faster but breaks OpenZFS' configure
        # on 6.12: its "loadable module support" check fails. The guest strips the modules instead.)
        (root / "etc/initramfs-tools").mkdir(parents=True, exist_ok=True)
        _write(root, "etc/initramfs-tools/update-initramfs.conf", "update_initramfs=no\n")
        with chroot_env(root):
            apt_install(root, [f"linux-headers-{kver}"], log, release)
            # zfs-dkms' postinst builds for the kernels whose headers it finds; a failure for the
            # host's running kernel (no headers) must not stop us: check the result below.
            apt_install(root, ["zfs-dkms"], log, gf.BACKPORTS)
            upstream = zfs.split("-")[0]
            built = root / f"lib/modules/{kver}/updates/dkms"
            if not any(built.glob("zfs.ko*")):
                in_chroot(root, "dkms", "install", f"zfs/{upstream}", "-k", kver, log=log, timeout=3600)
        if not any(built.glob("zfs.ko*")):
            raise CommandError(["dkms", "install"], f"no zfs.ko for {kver} (see {log})")
        run(["tar", "-C", root, "-cf", tmp / "modules.tar", f"lib/modules/{kver}/updates"])
        (tmp / "zfs-version").write_text(zfs + "\n")
        remove_tree(root)
    return art


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure_initramfs(root: Path) -> None:
    conf = root / "etc/initramfs-tools/initramfs.conf"
    text = conf.read_text()
    for old, new in gf.INITRAMFS_CONF_SED:
        text = text.replace(old, new)
    conf.write_text(text)
    _write(root, "etc/initramfs-tools/modules", gf.INITRAMFS_MODULES)


def _prune_modules(root: Path, kver: str, log: Path) -> None:
    for rel in gf.PRUNE_MODULE_DIRS:
        remove_tree(root / "lib/modules" / kver / rel)
    in_chroot(root, "depmod", "-a", kver, log=log)


def _strip_tree(root: Path) -> None:
    for rel in (
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt",
        "var/cache/debconf/templates.dat-old",
        "var/log/apt",
    ):
        path = root / rel
        if path.is_dir():
            for child in path.iterdir():
                if child.name in ("locale.alias",):
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for pyc in root.glob("usr/lib/python3*/**/__pycache__"):
        shutil.rmtree(pyc, ignore_errors=True)


def _make_initramfs(root: Path, kver: str, log: Path) -> None:
    """One initramfs, made last (with the ZFS modules, hostid and our config)."""
    in_chroot(root, "update-initramfs", "-d", "-k", kver, log=log, check=False)
    in_chroot(root, "update-initramfs", "-c", "-k", kver, log=log, timeout=1200)


def _untar_modules(root: Path, modules: Artifact) -> None:
    """The DKMS-built modules, without debug symbols (a smaller initrd is a faster boot under TCG)."""
    run(["tar", "-C", root, "-xf", modules.path / "modules.tar"])
    for ko in root.glob("lib/modules/*/updates/dkms/*.ko"):
        run(["strip", "--strip-debug", str(ko)])


def _zfs_modules_deb(workdir: Path) -> Path:
    pkg = workdir / "zfs-modules-testbed"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(gf.ZFS_MODULES_CONTROL)
    deb = workdir / "zfs-modules-testbed_1.0_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", pkg, deb])
    shutil.rmtree(pkg)
    return deb


def stage_root(base: Artifact, modules: Artifact, kver: str) -> Artifact:
    versions = apt_candidates([*GUEST_PACKAGES, f"linux-image-{kver}"])
    versions += apt_candidates(GUEST_BACKPORTS_PACKAGES, gf.BACKPORTS)
    key = key_of(
        source_of(
            stage_root,
            _configure_initramfs,
            _prune_modules,
            _strip_tree,
            _zfs_modules_deb,
            _untar_modules,
            _make_initramfs,
        ),
        Path(gf.__file__).read_text(),
        base.key,
        modules.key,
        kver,
        GUEST_PACKAGES,
        versions,
    )
    art = artifact("root", key)
    if art.done:
        return art
    log = stage_log("root")
    with building(art) as tmp:
        root = tmp / "root"
        copy_tree(base.path / "root", root)
        _write(root, "etc/kernel-img.conf", gf.KERNEL_IMG_CONF)
        _untar_modules(root, modules)
        deb = _zfs_modules_deb(root / "tmp")
        with chroot_env(root):
            # initramfs once at the end, not after every package
            in_chroot(
                root,
                "sh",
                "-c",
                "mkdir -p /etc/initramfs-tools && echo update_initramfs=no"
                " > /etc/initramfs-tools/update-initramfs.conf",
                log=log,
            )
            # a reboot must go through the firmware and GRUB, never kexec straight into a kernel
            in_chroot(root, "sh", "-c", f"echo '{gf.DEBCONF_SELECTIONS}' | debconf-set-selections", log=log)
            apt_install(root, [f"/tmp/{deb.name}"], log)
            apt_install(root, [f"linux-image-{kver}", *GUEST_PACKAGES], log)
            apt_install(root, GUEST_BACKPORTS_PACKAGES, log, gf.BACKPORTS)
            in_chroot(
                root,
                "sh",
                "-c",
                "echo update_initramfs=yes >" " /etc/initramfs-tools/update-initramfs.conf",
                log=log,
            )
            deb.unlink()
            in_chroot(root, "zgenhostid", "-f", gf.HOSTID, log=log)
            _configure_initramfs(root)
            _write(
                root, "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", gf.SERIAL_AUTOLOGIN
            )
            _write(root, "etc/hostname", gf.HOSTNAME + "\n")
            _write(root, "etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {gf.HOSTNAME}\n")
            _write(root, "etc/fstab", gf.FSTAB)
            _write(root, "root/.bashrc", gf.ROOT_BASHRC)
            _write(root, "etc/sysctl.d/10-testbed-quiet.conf", gf.SYSCTL_QUIET)
            _write(
                root, "etc/systemd/system/systemd-udev-settle.service.d/testbed.conf", gf.UDEV_SETTLE_DROPIN
            )
            _write(root, "usr/local/sbin/testbed-helper-init", gf.HELPER_INIT, 0o755)
            (root / "boot/grub").mkdir(parents=True, exist_ok=True)
            (root / "etc/bootagent-testbed").mkdir(parents=True, exist_ok=True)
            (root / "etc/appliance").mkdir(parents=True, exist_ok=True)
            in_chroot(root, "passwd", "-d", "root", log=log)
            in_chroot(root, "systemctl", "enable", "serial-getty@ttyS0.service", log=log)
            in_chroot(root, "systemctl", "mask", *gf.MASKED_UNITS, log=log, check=False)
            in_chroot(root, "systemctl", "disable", "ssh.service", "ssh.socket", log=log, check=False)
            _prune_modules(root, kver, log)
            _make_initramfs(root, kver, log)
            in_chroot(root, "apt-get", "clean", log=log)
        # keep apt's lists beside the tree (the gamma stage installs one more kernel) but not in it
        shutil.move(root / "var/lib/apt/lists", tmp / "apt-lists")
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        _strip_tree(root)
        for link in ("boot/vmlinuz", "boot/initrd.img"):
            if not (root / link).exists():
                raise CommandError(["ls", link], f"{link} missing in the root: kernel-img.conf not obeyed")
        (tmp / "kernel").write_text(kver + "\n")
    return art


def _mkfs_ext4_from(tree: Path, image: Path, label: str, log: Path, slack_mb: int = 400) -> None:
    used_mb = int(run(["du", "-s", "-m", str(tree)]).split()[0])
    size_mb = used_mb * 13 // 10 + slack_mb
    run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", tree, image, f"{size_mb}M"], log=log, timeout=900)


def stage_gamma(root_art: Artifact, modules: Artifact, kver: str, old_kver: str) -> Artifact:
    """The guest root carrying the OTHER kernel (for the BE gamma), as an ext4 image."""
    key = key_of(
        source_of(stage_gamma, _mkfs_ext4_from, _untar_modules, _make_initramfs),
        root_art.key,
        modules.key,
        kver,
        apt_candidate(f"linux-image-{kver}", gf.BACKPORTS),
    )
    art = artifact("gamma", key)
    if art.done:
        return art
    log = stage_log("gamma")
    with building(art) as tmp:
        root = tmp / "root"
        copy_tree(root_art.path / "root", root)
        remove_tree(root / "var/lib/apt/lists")
        copy_tree(root_art.path / "apt-lists", root / "var/lib/apt/lists")
        _untar_modules(root, modules)
        with chroot_env(root):
            apt_install(root, [f"linux-image-{kver}"], log, gf.BACKPORTS)
            in_chroot(root, "apt-get", "purge", "-y", "-q", f"linux-image-{old_kver}", log=log)
            remove_tree(root / "lib/modules" / old_kver)
            _prune_modules(root, kver, log)
            _make_initramfs(root, kver, log)
            in_chroot(root, "apt-get", "clean", log=log)
        remove_tree(root / "var/lib/apt/lists")
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        _strip_tree(root)
        target = os.readlink(root / "boot/vmlinuz")
        if kver not in target:
            raise CommandError(["readlink", "boot/vmlinuz"], f"gamma's /boot/vmlinuz -> {target}, not {kver}")
        _mkfs_ext4_from(root, tmp / "gamma.ext4", "gammasrc", log)
        remove_tree(root)
        (tmp / "kernel").write_text(kver + "\n")
    return art


def stage_helper(root_art: Artifact, kver: str) -> Artifact:
    """The guest root as an ext4 image, booted directly with its own kernel and initrd."""
    key = key_of(source_of(stage_helper, _mkfs_ext4_from), root_art.key, kver)
    art = artifact("helper", key)
    if art.done:
        return art
    log = stage_log("helper")
    with building(art) as tmp:
        root = root_art.path / "root"
        _mkfs_ext4_from(root, tmp / "root.ext4", "testbedroot", log)
        shutil.copyfile(root / f"boot/vmlinuz-{kver}", tmp / "vmlinuz")
        shutil.copyfile(root / f"boot/initrd.img-{kver}", tmp / "initrd.img")
        (tmp / "kernel").write_text(kver + "\n")
    return art


# ---------------------------------------------------------------- the disk


def first_boot_cfg(pool: str = POOL, be: str = ACTIVE_BE) -> str:
    """The test bed's own grub.cfg for the boots before bootagent is installed (the agent layer's
    update-grub replaces it with the product's menu). Plain GRUB script, no bootagent code."""
    dataset = f"/{LAYOUT.root}/{be}@"
    return f"""\
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=5
insmod part_gpt
insmod zfs
search --no-floppy --label --set=root {pool}
menuentry 'test bed, boot environment {be} (bootagent not installed yet)' --id testbed-first-boot {{
\tlinux {dataset}/boot/vmlinuz root=ZFS={pool}/{LAYOUT.root}/{be} console=tty0 console=ttyS0,115200
\tinitrd {dataset}/boot/initrd.img
}}
"""


def install_grub(disk: Path, workdir: Path, log: Path) -> None:
    """GPT + BIOS GRUB + the ext4 partition p2 with GRUB's files, grub.cfg and grubenv; no grub-install."""
    run(["sgdisk", "-Z", disk], log=log)
    run(
        [
            "sgdisk",
            f"-n1:{P1[0]}:{P1[1]}",
            "-t1:EF02",
            "-c1:biosboot",
            f"-n2:{P2[0]}:{P2[1]}",
            "-t2:8300",
            "-c2:bootgrub",
            f"-n3:{P3_START}:0",
            "-t3:BF00",
            "-c3:rpool",
            disk,
        ],
        log=log,
    )
    stage = workdir / "p2"
    mods = stage / "i386-pc"
    mods.mkdir(parents=True)
    for pattern in ("*.mod", "*.lst", "boot.img"):
        for src in Path("/usr/lib/grub/i386-pc").glob(pattern):
            shutil.copyfile(src, mods / src.name)
    run(
        [
            "grub-mkimage",
            "-O",
            "i386-pc",
            "-o",
            mods / "core.img",
            "-p",
            "(hd0,gpt2)",
            "biosdisk",
            "part_gpt",
            "ext2",
        ],
        log=log,
    )
    (stage / "grub.cfg").write_text(first_boot_cfg())
    run(["grub-editenv", stage / "grubenv", "create"], log=log)  # as grub-install does
    p2_image = workdir / "p2.ext4"
    p2_bytes = (P2[1] - P2[0] + 1) * SECTOR
    run(["mkfs.ext4", "-q", "-F", "-L", "bootgrub", "-d", stage, p2_image, str(p2_bytes // 1024)], log=log)
    run(
        [
            "dd",
            f"if={p2_image}",
            f"of={disk}",
            "bs=1M",
            f"seek={P2[0] * SECTOR // 2**20}",
            "conv=notrunc,sparse",
            "status=none",
        ],
        log=log,
    )
    # grub-bios-setup guesses the "root device" from the directory holding core.img: that directory
    # must be on a device named in the device map, so mount p2 through an offset loop device.
    loop = run(
        ["losetup", "-f", "--show", "-o", str(P2[0] * SECTOR), "--sizelimit", str(p2_bytes), disk]
    ).strip()
    mnt = workdir / "p2mnt"
    mnt.mkdir()
    try:
        run(["mount", loop, mnt])
        try:
            devmap = workdir / "device.map"
            devmap.write_text(f"(hd0) {disk}\n(hd1) {loop}\n")
            run(
                ["/usr/lib/grub/i386-pc/grub-bios-setup", "-d", mnt / "i386-pc", "-m", devmap, "-s", disk],
                log=log,
            )
        finally:
            run(["umount", mnt])
    finally:
        run(["losetup", "-d", loop])
    mnt.rmdir()
    p2_image.unlink()
    shutil.rmtree(stage)


POOL_JOB = r"""
T=/mnt/t
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add --subsystem-match=block
udevadm settle -t 30
modprobe zfs
DISK=/dev/disk/by-id/virtio-@SERIAL@
ls -l /dev/disk/by-id/
zpool create -f -o compatibility=grub2 -o ashift=12 -o cachefile=none -R $T \
    -O compression=lz4 -O acltype=posixacl -O xattr=sa -O atime=off -O relatime=off \
    -O canmount=off -O mountpoint=none @POOL@ $DISK-part3
zfs create -o canmount=off -o mountpoint=none @POOL@/@ROOT@

# alpha: a copy of this (read-only) root; beta: received from it (the factory baseline is sealed from
# beta by the product itself, 'bootagent factory seal', when the agent layer installs the package)
zfs create -o canmount=noauto -o mountpoint=/ @POOL@/@ROOT@/alpha
zfs mount @POOL@/@ROOT@/alpha
mkdir -p /tmp/src && mount --bind / /tmp/src
cp -a /tmp/src/. $T/
umount /tmp/src
zfs snapshot @POOL@/@ROOT@/alpha@clean
zfs umount @POOL@/@ROOT@/alpha
zfs send @POOL@/@ROOT@/alpha@clean | zfs receive -u -o canmount=noauto -o mountpoint=/ @POOL@/@ROOT@/beta
zfs destroy @POOL@/@ROOT@/alpha@clean
zfs destroy @POOL@/@ROOT@/beta@clean

# gamma: the root with the other kernel, from the second disk
zfs create -o canmount=noauto -o mountpoint=/ @POOL@/@ROOT@/gamma
zfs mount @POOL@/@ROOT@/gamma
mkdir -p /tmp/gsrc && mount -o ro /dev/disk/by-id/virtio-gammasrc /tmp/gsrc
cp -a /tmp/gsrc/. $T/
rm -rf $T/lost+found
umount /tmp/gsrc
zfs umount @POOL@/@ROOT@/gamma
rm -rf $T/lost+found

mkbe() {
    be=$1; kver=$2; desc=$3
    zfs mount @POOL@/@ROOT@/$be
    mkdir -p $T/etc/bootagent-testbed
    echo $be > $T/etc/bootagent-testbed/marker
    for i in 1 2 3; do
        echo $i > $T/etc/bootagent-testbed/step
        zfs snapshot -o org.bootagent:description="$be step $i" -o org.bootagent:created-by=manual \
            @POOL@/@ROOT@/$be@s$i
    done
    echo 4 > $T/etc/bootagent-testbed/step
    zfs set org.bootagent:description="$desc" org.bootagent:kernel=$kver org.bootagent:created-by=manual \
        @POOL@/@ROOT@/$be
    zfs umount @POOL@/@ROOT@/$be
}
mkbe alpha @KVER1@ "oldest boot environment"
mkbe beta @KVER1@ "active boot environment"
mkbe gamma @KVER2@ "boot environment with the backports kernel"

zfs create -o mountpoint=/etc/appliance @POOL@/@CONFIG@
cp /mnt/share/config/* $T/etc/appliance/

zfs create -o canmount=off -o mountpoint=/srv/customer @POOL@/customer
for c in acme globex; do
    zfs create @POOL@/customer/$c
    d=$T/srv/customer/$c
    for n in 1 2 3 4; do head -c $((n * 65536 + 123)) /dev/urandom > $d/data-$n.bin; done
    echo "customer $c" > $d/README
    (cd $d && sha256sum data-*.bin README > SHA256SUMS)
done
zfs set org.bootagent:customer=on @POOL@/customer/globex
zfs create -o mountpoint=/var/lib/bootagent @POOL@/@STATE@

zpool set bootfs=@POOL@/@ROOT@/@ACTIVE@ @POOL@
zfs list -t all -o name,used,mountpoint,canmount,org.bootagent:kernel > /mnt/share/layout.txt
zpool get -H compatibility,bootfs @POOL@ >> /mnt/share/layout.txt
zpool export @POOL@
"""


def run_helper(
    helper: Artifact,
    disks: list[tuple[Path, str, bool]],
    share: Path,
    job: str,
    log: Path,
    timeout: float = 1800,
) -> None:
    """Boot the helper root directly (no GRUB), run job as a shell script, wait for power-off."""
    (share / "job.sh").write_text(job)
    (share / "rc").unlink(missing_ok=True)
    argv: list[str | Path] = [
        "qemu-system-x86_64",
        "-machine",
        "pc",
        "-smp",
        "2",
        "-m",
        "2048",
        "-nographic",
        "-no-reboot",
        "-kernel",
        helper.path / "vmlinuz",
        "-initrd",
        helper.path / "initrd.img",
        "-append",
        "root=/dev/vda ro rootfstype=ext4 console=ttyS0,115200 panic=-1 "
        "init=/usr/local/sbin/testbed-helper-init",
        # every disk through -device, in order: the root is /dev/vda
        "-drive",
        f"file={helper.path / 'root.ext4'},format=raw,if=none,id=root,readonly=on",
        "-device",
        "virtio-blk-pci,drive=root,serial=helperroot",
        "-virtfs",
        f"local,path={share},mount_tag=share,security_model=none,id=share",
        "-serial",
        f"file:{log}",
        "-monitor",
        "none",
    ]
    for index, (path, serial, readonly) in enumerate(disks):
        fmt = "qcow2" if path.suffix == ".qcow2" else "raw"
        ro = ",readonly=on" if readonly else ""
        argv += [
            "-drive",
            f"file={path},format={fmt},if=none,id=disk{index},cache=unsafe{ro}",
            "-device",
            f"virtio-blk-pci,drive=disk{index},serial={serial}",
        ]
    started = time.monotonic()
    try:
        with log.with_suffix(".qemu.log").open("wb") as qemu_log:
            subprocess.run(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=qemu_log,
                stderr=qemu_log,
                timeout=timeout,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, f"helper boot did not power off within {timeout:.0f} s; see {log}") from exc
    rc = (share / "rc").read_text().strip() if (share / "rc").exists() else "missing"
    say(f"helper job finished in {time.monotonic() - started:.0f} s with exit code {rc}")
    if rc != "0":
        qemu_errors = log.with_suffix(".qemu.log").read_text(errors="replace")[-2000:]
        raise CommandError(argv, f"helper job failed (exit code {rc}); console log: {log}", None, qemu_errors)


def stage_disk(helper: Artifact, gamma: Artifact, kernels: Kernels) -> Artifact:
    grub_version = run(["dpkg-query", "-W", "-f=${Version}", "grub-pc-bin"])
    key = key_of(
        source_of(stage_disk, install_grub, run_helper, first_boot_cfg),
        POOL_JOB,
        LAYOUT,
        helper.key,
        gamma.key,
        grub_version,
        gf.CONFIG_FILES,
        kernels,
        DISK_SIZE,
    )
    art = artifact("disk", key)
    if art.done:
        return art
    log = stage_log("disk")
    with building(art, stage_log("disk-console")) as tmp:
        disk = tmp / "disk.raw"
        with disk.open("wb") as fh:
            fh.truncate(DISK_SIZE)
        install_grub(disk, tmp, log)
        share = tmp / "share"
        (share / "config").mkdir(parents=True)
        for name, text in gf.CONFIG_FILES.items():
            (share / "config" / name).write_text(text)
        job = (
            POOL_JOB.replace("@SERIAL@", DISK_SERIAL)
            .replace("@POOL@", POOL)
            .replace("@ROOT@", LAYOUT.root)
            .replace("@CONFIG@", LAYOUT.config_datasets[0])
            .replace("@STATE@", LAYOUT.state_dataset)
            .replace("@ACTIVE@", ACTIVE_BE)
            .replace("@KVER1@", kernels.primary)
            .replace("@KVER2@", kernels.other)
        )
        run_helper(
            helper,
            [(disk, DISK_SERIAL, False), (gamma.path / "gamma.ext4", "gammasrc", True)],
            share,
            job,
            stage_log("disk-console"),
        )
        shutil.copyfile(share / "layout.txt", tmp / "layout.txt")
        shutil.rmtree(share)
    return art


# ---------------------------------------------------------------- all


@dataclass(frozen=True)
class Image:
    disk: Path
    helper: Path
    kernels: Kernels
    timings: dict[str, float]
    artifacts: tuple[Path, ...]


def build_image() -> Image:
    from testbed.cache import clean_stale_temps

    clean_stale_temps()
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.monotonic() - start, 1)

    t = time.monotonic()
    kernels = resolve_kernels()
    say(f"guest kernels: {kernels.primary} (alpha, beta), {kernels.other} (gamma)")
    base = stage_base()
    timed("base", t)
    # The two DKMS builds (the longest stages of a first build) run side by side: each has long
    # single-threaded stretches (configure, linking) that the other's compiling fills.
    # The root stage needs only the first kernel's modules: it runs while the second build finishes.
    t = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkms") as pool:
        second = pool.submit(stage_modules, base, kernels.other, gf.BACKPORTS)
        mods1 = stage_modules(base, kernels.primary, None)
        timed(f"zfs-modules {kernels.primary}", t)
        root = stage_root(base, mods1, kernels.primary)
        timed(f"zfs-modules {kernels.primary} + root", t)
        mods2 = second.result()
    timed("zfs-modules (both kernels) + root", t)
    t = time.monotonic()
    gamma = stage_gamma(root, mods2, kernels.other, kernels.primary)
    timed("gamma", t)
    t = time.monotonic()
    helper = stage_helper(root, kernels.primary)
    timed("helper", t)
    t = time.monotonic()
    disk = stage_disk(helper, gamma, kernels)
    timed("disk", t)
    say(f"image ready: {disk.path / 'disk.raw'}; stage times (s): {timings}")
    chain = (base, mods1, mods2, root, gamma, helper, disk)
    return Image(
        disk=disk.path / "disk.raw",
        helper=helper.path,
        kernels=kernels,
        timings=timings,
        artifacts=tuple(a.path for a in chain),
    )
