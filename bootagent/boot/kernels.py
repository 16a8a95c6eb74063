"""Kernel pairing: every boot environment carries its own kernel in its /boot.

Pivoting into a root whose /lib/modules lacks the running kernel's modules leaves a system without drivers,
so the agent checks the chosen environment's tree and, when its kernel is another one, boots that kernel
(kexec with its own initramfs, or a one-shot GRUB choice and a reboot).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KernelFiles:
    release: str
    kernel: str  # path inside the mounted tree
    initrd: str | None


def release_key(release: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+~]", release)]


def kernels_in(tree: str | os.PathLike[str]) -> list[KernelFiles]:
    """The kernels a root tree can boot: /boot/vmlinuz-R with /lib/modules/R present, newest first."""
    root = Path(tree)
    modules = root / "lib" / "modules"
    releases = {p.name for p in modules.iterdir() if p.is_dir()} if modules.is_dir() else set()
    out = []
    for release in releases:
        kernel = root / "boot" / f"vmlinuz-{release}"
        if kernel.is_file():
            initrd = root / "boot" / f"initrd.img-{release}"
            out.append(KernelFiles(release, str(kernel), str(initrd) if initrd.is_file() else None))
    out.sort(key=lambda k: release_key(k.release), reverse=True)
    return out


def choose_kernel(tree: str | os.PathLike[str], *, running: str, preferred: str | None) -> KernelFiles | None:
    """The kernel to boot the tree with: the running one if the tree has its modules, else the environment's
    recorded kernel, else the newest bootable one. None when the tree holds no bootable kernel."""
    available = kernels_in(tree)
    by_release = {k.release: k for k in available}
    if (Path(tree) / "lib" / "modules" / running).is_dir():
        return by_release.get(running) or KernelFiles(running, "", None)
    if preferred and preferred in by_release:
        return by_release[preferred]
    return available[0] if available else None
