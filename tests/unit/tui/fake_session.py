"""A RecoverySession over the in-memory pool (tests/fakes.py) and the real domain (BootEnvironments).

It records every call (what the menu asked for, in order) so tests can assert what was and was not done;
`fail` makes the next call of an operation raise, `refuse` every call of it; `delay` makes the pool-changing
calls slow, with progress messages, so the busy screen shows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bootagent.boot.session import BootDecision, Progress
from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.environments import BootEnvironments, Inventory, RollbackResult, RollForwardResult, unique_name
from bootagent.errors import RefusedError
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal, JournalEntry
from bootagent.model import Actor, CreatedBy
from bootagent.reset.baseline import seal
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan
from bootagent.reset.run import ResetTarget
from bootagent.reset.service import prepare, start
from tests.fakes import FakeZfs, reference_pool

NOW = 1_700_100_000.0
RUNNING_KERNEL = "6.1.0-30-amd64"


class FakeSession:
    def __init__(
        self,
        root: Path,
        *,
        delay: float = 0.0,
        running: bool = False,
        fail: dict[str, Exception] | None = None,
        refuse: frozenset[str] = frozenset(),
        default: str | None = "beta",
        environments: int = 0,
        snapshots: int = 0,
    ) -> None:
        self.zfs: FakeZfs = reference_pool()
        for n in range(environments):  # more environments after the reference three (a long list)
            name = f"rpool/ROOT/upgrade-{n + 1:03d}"
            self.zfs.add_fs(
                name,
                mountpoint="/",
                canmount="noauto",
                user_props={
                    "org.bootagent:description": f"checkpoint before upgrade {n + 1}",
                    "org.bootagent:created-by": "package-manager",
                    "org.bootagent:kernel": "6.1.0-30-amd64",
                },
            )
            for k in range(snapshots):  # each with this many snapshots
                self.zfs.add_snap(
                    f"{name}@apt-{k + 1:02d}",
                    user_props={"org.bootagent:created-by": "package-manager"},
                )
        if not running:
            self.zfs.mounted.pop("/", None)  # at boot nothing is mounted at / yet
        nodes = self.zfs.nodes
        nodes["rpool/ROOT/alpha"].user_props["org.bootagent:last-good"] = str(int(NOW - 86400))
        nodes["rpool/ROOT/gamma@s2"].user_props["org.bootagent:keep"] = "on"
        nodes["rpool/ROOT/gamma"].user_props["org.bootagent:description"] = (
            "gamma system: trial of the new kernel"
        )
        (root / "grub").mkdir(parents=True, exist_ok=True)
        grubenv = GrubenvFile(root / "grub" / "grubenv")
        grubenv.update({"bootagent_default": "beta"})
        self.journal_store = Journal(root / "state", actor=Actor.AGENT, clock=lambda: NOW)
        self.envs = BootEnvironments(
            self.zfs,
            Config(pool="rpool", grubenv=str(grubenv.path)),
            "rpool",
            self.journal_store,
            BootStore(self.zfs, grubenv),
            clock=lambda: NOW,
            kernel_release=lambda: RUNNING_KERNEL,
            mount_base=str(root / "mnt"),
        )
        self.delay = delay
        self.fail = dict(fail or {})
        self.refuse = refuse
        self.default = default
        self.calls: list[dict[str, Any]] = []
        self.root = root

    def _record(self, op: str, **args: Any) -> None:
        self.calls.append({"op": op, **args})
        if op in self.fail:
            raise self.fail.pop(op)
        if op in self.refuse:
            raise RefusedError(f"{op} refused by the test", hint="every time")

    def _slow(self, progress: Progress, what: str) -> None:
        if self.delay:
            progress(f"{what}: importing the pool read-write")
            time.sleep(self.delay / 2)
            progress(f"{what}: almost done")
            time.sleep(self.delay / 2)

    # --- RecoverySession -----------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        return self.envs.inventory()

    def default_environment(self) -> str | None:
        if self.default is None:
            return None
        inv = self.inventory()
        return inv.state.next_once or inv.state.active or inv.state.last_known_good

    def journal(self, limit: int) -> Sequence[JournalEntry]:
        return self.journal_store.entries(limit)

    def _decide(self, environment: str) -> BootDecision:
        env = self.inventory().find(environment)
        return BootDecision(env.name, env.dataset, env.kernel, needs_own_kernel=env.kernel != RUNNING_KERNEL)

    def boot(self, environment: str) -> BootDecision:
        self._record("boot", environment=environment)
        return self._decide(environment)

    def boot_snapshot(self, snapshot: str, progress: Progress) -> BootDecision:
        self._record("boot_snapshot", snapshot=snapshot)
        self._slow(progress, f"cloning {snapshot}")
        env_name, _, snap_name = snapshot.partition("@")
        name = unique_name(f"{env_name}-{snap_name}", [e.name for e in self.inventory().environments])
        self.envs.create(name, snapshot, description=f"booted from {snapshot}", created_by=CreatedBy.AGENT)
        return self._decide(name)

    def rollback(
        self, environment: str, *, steps: int | None, destructive: bool, progress: Progress
    ) -> RollbackResult:
        self._record("rollback", environment=environment, steps=steps, destructive=destructive)
        self._slow(progress, f"rolling {environment} back")
        return self.envs.rollback(
            environment, steps=steps, destructive=destructive, created_by=CreatedBy.AGENT
        )

    def roll_forward(self, environment: str, *, steps: int | None, progress: Progress) -> RollForwardResult:
        self._record("roll_forward", environment=environment, steps=steps)
        self._slow(progress, f"rolling {environment} forward")
        return self.envs.roll_forward(environment, steps=steps)

    # --- the factory reset: the real plan and steps over the in-memory pool ---------------------------
    def seal(self) -> None:
        seal(
            self.zfs,
            self.envs.config,
            "rpool",
            self.journal_store,
            environment="rpool/ROOT/alpha",
            release="r1",
            kernel=RUNNING_KERNEL,
            clock=lambda: NOW - 1000,
        )

    def plan_reset(self, mode: ResetMode) -> ResetPlan:
        self._record("plan_reset", mode=mode.value)
        return prepare(self.zfs, self.envs.config, "rpool", mode, clock=lambda: NOW)

    def factory_reset(self, plan: ResetPlan, progress: Progress) -> BootDecision:
        # a reset destroys (an environment or customer data) in every mode but keep-data with kept envs
        self._record("factory_reset", mode=plan.mode.value, destructive=True)
        self._slow(progress, "resetting")
        target = ResetTarget(
            self.zfs,
            self.envs.boot,
            self.journal_store,
            str(self.root / "state"),
            progress=progress,
            clock=lambda: NOW,
        )
        start(target, plan)
        return self._decide(plan.new_environment)
