"""Where the boot choice is kept: the pool's bootfs (the persistent default, also what Debian's zfs
initramfs uses for root=ZFS=AUTO) mirrored in GRUB's environment block, plus the one-shot next-boot choice
that only GRUB's environment block can carry (GRUB clears it before booting it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bootagent.errors import SystemFailure
from bootagent.grubenv import DEFAULT_VAR, ONCE_VAR, GrubenvFile
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootChoice:
    default: str | None  # environment name from grubenv
    once: str | None
    grubenv_damaged: bool
    grubenv_present: bool


class BootStore:
    def __init__(self, zfs: ZfsBackend, grubenv: GrubenvFile) -> None:
        self.zfs = zfs
        self.grubenv = grubenv

    def read(self) -> BootChoice:
        env = self.grubenv.read()
        return BootChoice(
            default=env.get(DEFAULT_VAR) or None,
            once=env.get(ONCE_VAR) or None,
            grubenv_damaged=env.damaged,
            grubenv_present=self.grubenv.path.exists(),
        )

    def set_default(self, pool: str, dataset: str, name: str) -> None:
        """Make `name` the persistent default: grubenv first (the step most likely to fail), then bootfs;
        if bootfs fails the grubenv change is undone, so the two never disagree."""
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
        self.grubenv.update({ONCE_VAR: name})
