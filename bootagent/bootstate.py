"""Where the boot choice is kept: the pool's bootfs (the persistent default, also what Debian's zfs
initramfs uses for root=ZFS=AUTO) mirrored in GRUB's environment block, plus the one-shot next-boot choice
that only GRUB's environment block can carry (GRUB clears it before booting it)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from bootagent.errors import SystemFailure
from bootagent.grubenv import DEFAULT_VAR, ONCE_VAR, GrubenvError, GrubenvFile
from bootagent.zfs.cli import unescape_mounts
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootChoice:
    default: str | None  # environment name from grubenv
    once: str | None
    grubenv_damaged: bool
    grubenv_present: bool


class BootStore:
    def __init__(
        self, zfs: ZfsBackend, grubenv: GrubenvFile, *, mounts_path: str = "/proc/self/mounts"
    ) -> None:
        self.zfs = zfs
        self.grubenv = grubenv
        self.mounts_path = mounts_path

    def read(self) -> BootChoice:
        env = self.grubenv.read()
        return BootChoice(
            default=env.get(DEFAULT_VAR) or None,
            once=env.get(ONCE_VAR) or None,
            grubenv_damaged=env.damaged,
            grubenv_present=self.grubenv.path.exists(),
        )

    def on_zfs(self) -> str | None:
        """The dataset the grubenv's directory lies on, when it is ZFS (from the mount table: the longest
        mount point above it). GRUB's `save_env` cannot write there, and the file is not the one GRUB
        reads from its own partition: typically /boot/grub's partition is not mounted (yet: a `nofail`
        mount early in the boot), and /boot/grub is the root's own directory."""
        directory = os.path.realpath(self.grubenv.path.parent)
        best: tuple[str, str, str] | None = None  # mount point, type, source
        try:
            with open(self.mounts_path, encoding="utf-8", errors="surrogateescape") as table:
                for line in table:
                    fields = line.split()
                    if len(fields) < 3:
                        continue
                    source, point, fstype = (
                        unescape_mounts(fields[0]),
                        unescape_mounts(fields[1]),
                        fields[2],
                    )
                    inside = directory == point or directory.startswith(point.rstrip("/") + "/")
                    if inside and (best is None or len(point) >= len(best[0])):
                        best = (point, fstype, source)  # the last of equal ones is on top
        except OSError as exc:
            LOG.debug("cannot read %s: %s", self.mounts_path, exc)
            return None
        return best[2] if best is not None and best[1] == "zfs" else None

    def _check_place(self) -> None:
        dataset = self.on_zfs()
        if dataset is not None:
            raise GrubenvError(
                f"the GRUB environment block {self.grubenv.path} is on ZFS ({dataset}), not on GRUB's "
                "partition: GRUB would never see this change, so nothing was changed",
                hint="mount GRUB's partition there (is /boot/grub in /etc/fstab mounted?), "
                "or set 'grubenv' in the config",
            )

    def set_default(self, pool: str, dataset: str, name: str) -> None:
        """Make `name` the persistent default: grubenv first (the step most likely to fail), then bootfs;
        if bootfs fails the grubenv change is undone, so the two never disagree."""
        self._check_place()
        before = self.grubenv.read()
        self.grubenv.update({DEFAULT_VAR: name})
        try:
            self.zfs.set_bootfs(pool, dataset)
        except BaseException:
            try:
                self.grubenv.update({DEFAULT_VAR: before.get(DEFAULT_VAR)})
            except SystemFailure as exc:  # pragma: no cover - double failure, reported by the caller
                LOG.error("could not restore %s after a failed bootfs change: %s", self.grubenv.path, exc)
            raise

    def set_once(self, name: str | None) -> None:
        self._check_place()
        self.grubenv.update({ONCE_VAR: name})
