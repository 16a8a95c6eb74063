"""Keeping GRUB's menu in step with the boot environments.

GRUB's default and recovery entries follow grubenv at boot time, but grub.d/42_bootagent also writes one
entry per environment, and those are fixed when grub.cfg is generated. After a command adds or removes
environments, the menu is regenerated with the system's own `update-grub`, so no stale entry points at a
destroyed dataset and every new environment has its entry. The change itself is already done and journalled
by then: a failure here is a warning with a hint, never an error.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bootagent.config import Tristate
from bootagent.errors import CommandError
from bootagent.runner import Runner, run

LOG = logging.getLogger(__name__)

UPDATE_GRUB = "update-grub"


@dataclass(frozen=True)
class MenuRefresh:
    updated: bool
    warning: str | None = None


class BootMenu(Protocol):
    def refresh(self) -> MenuRefresh: ...


@dataclass(frozen=True)
class GrubMenu:
    """Regenerates grub.cfg with update-grub (found on PATH), through the one runner."""

    runner: Runner = run
    which: Callable[[str], str | None] = shutil.which
    timeout: float = 600.0
    required: bool = False  # grub_update: true -- a missing update-grub is worth a warning

    def refresh(self) -> MenuRefresh:
        program = self.which(UPDATE_GRUB)
        if program is None:
            LOG.info("no %s on this system; GRUB's menu is left as it is", UPDATE_GRUB)
            if self.required:
                return MenuRefresh(
                    False,
                    f"grub_update is true but there is no {UPDATE_GRUB} on this system: GRUB's menu was not "
                    "regenerated (install grub2-common, or set grub_update: auto)",
                )
            return MenuRefresh(False)
        try:
            self.runner([program], timeout=self.timeout)
        except CommandError as exc:
            return MenuRefresh(
                False,
                f"the change is done, but GRUB's menu was not regenerated ({exc.message}); "
                f"run '{UPDATE_GRUB}' once the problem is fixed, or pick the environment from the "
                "recovery menu",
            )
        return MenuRefresh(True)


@dataclass(frozen=True)
class NoMenu:
    """grub_update: false."""

    def refresh(self) -> MenuRefresh:
        return MenuRefresh(False)


def boot_menu(setting: Tristate) -> BootMenu:
    if setting is Tristate.OFF:
        return NoMenu()
    return GrubMenu(required=setting is Tristate.ON)
