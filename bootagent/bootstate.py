"""Where the boot choice is kept: the pool's bootfs (the persistent default, also what Debian's zfs
initramfs uses for root=ZFS=AUTO) mirrored in GRUB's environment block, plus the one-shot next-boot choice
that only GRUB's environment block can carry (GRUB clears it before booting it)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from bootagent.errors import SystemFailure
from bootagent.grubenv import DEFAULT_VAR, ONCE_VAR, GrubenvError, GrubenvFile
from bootagent.mounts import MOUNTS, mount_of, mount_table
from bootagent.recovery.counter import TRIES_VAR
from bootagent.reset.store import RESET_VAR
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootChoice:
    default: str | None  # environment name from grubenv
    once: str | None
    grubenv_damaged: bool
    grubenv_present: bool


class BootStore:
    def __init__(self, zfs: ZfsBackend, grubenv: GrubenvFile, *, mounts_path: str = MOUNTS) -> None:
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
        try:
            table = mount_table(self.mounts_path)
        except OSError as exc:
            LOG.debug("cannot read %s: %s", self.mounts_path, exc)
            return None
        mount = mount_of(os.path.realpath(self.grubenv.path.parent), table)
        return mount.source if mount is not None and mount.fstype == "zfs" else None

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

    def set_reset(self, mode: str | None) -> None:
        """The factory reset's flag (bootagent.reset.store.RESET_VAR): set while a reset is asked for or
        under way, cleared when it is complete."""
        self._check_place()
        self.grubenv.update({RESET_VAR: mode})

    def counter(self) -> tuple[str | None, bool]:
        """The boot counter's raw value, and whether the block it came from is sound (present, undamaged)."""
        env = self.grubenv.read()
        return env.get(TRIES_VAR), self.grubenv.path.exists() and not env.damaged

    def set_counter(self, value: str, *, default: str | None = None) -> None:
        """Set the boot counter -- and, when given, GRUB's default -- in one write of the block."""
        self._check_place()
        changes: dict[str, str | None] = {TRIES_VAR: value}
        if default is not None:
            changes[DEFAULT_VAR] = default
        self.grubenv.update(changes)
