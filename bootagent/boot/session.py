"""What the early-boot menu (TUI, line mode or unattended) may ask of the system.

The menu never touches ZFS itself: it calls a `RecoverySession`. The real session (boot/agent.py) works on a
pool imported read-only until the operator commits to a change; tests use a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bootagent.environments import Inventory, RollbackResult, RollForwardResult
from bootagent.journal import JournalEntry
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan

Progress = Callable[[str], None]  # a one-line status message for anything slow


@dataclass(frozen=True)
class BootDecision:
    """Boot this environment: pivot into it, or (kernel mismatch) boot its own kernel."""

    environment: str
    dataset: str
    kernel: str | None  # the environment's kernel release, when known
    needs_own_kernel: bool  # its kernel is not the running one: kexec it (or a one-shot GRUB reboot)


class MenuExit(StrEnum):
    BOOT = "boot"
    SHELL = "shell"
    REBOOT = "reboot"
    POWEROFF = "poweroff"
    RESET = "reset"  # a confirmed factory reset: the agent carries it out on the plain console


@dataclass(frozen=True)
class MenuResult:
    exit: MenuExit
    decision: BootDecision | None = None  # set when exit is BOOT
    reset: ResetPlan | None = None  # set when exit is RESET


class RecoverySession(Protocol):
    def inventory(self) -> Inventory:
        """Environments, snapshots and boot state (cheap after the first call; refresh after changes)."""
        ...

    def default_environment(self) -> str | None:
        """What the countdown boots: the next-boot choice, else the active one, else last-known-good."""
        ...

    def journal(self, limit: int) -> Sequence[JournalEntry]: ...

    def boot(self, environment: str) -> BootDecision:
        """Decide how to boot an existing environment (no change to the pool)."""
        ...

    def boot_snapshot(self, snapshot: str, progress: Progress) -> BootDecision:
        """Clone ENV@SNAP into a new environment (the snapshot is never modified) and decide to boot it."""
        ...

    def rollback(
        self, environment: str, *, steps: int | None, destructive: bool, progress: Progress
    ) -> RollbackResult:
        """As BootEnvironments.rollback; the caller has already obtained any typed confirmation."""
        ...

    def roll_forward(
        self, environment: str, *, steps: int | None, progress: Progress
    ) -> RollForwardResult: ...

    def plan_reset(self, mode: ResetMode) -> ResetPlan:
        """What a factory reset in `mode` would keep and erase (nothing is changed)."""
        ...
