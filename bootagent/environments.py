"""Boot environments: the domain operations, plain logic over the ZFS interface.

Layout (see README, "Pool layout"): environments are `<pool>/<root>/<name>`, one dataset each; snapshots of
them are checkpoints. Every change is journaled (intent first, outcome last). Safety rules live here, in one
place, so the CLI, the early-boot agent and unattended recovery all obey the same ones.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.errors import BootagentError, NotFoundError, RefusedError, UsageError
from bootagent.inventory import Inventory, assemble
from bootagent.journal import Journal
from bootagent.model import (
    FACTORY_HOLD_TAG,
    MAX_NAME,
    BootEnvironment,
    BootState,
    CreatedBy,
    Flag,
    Prop,
    Snapshot,
    last_known_good,
    split_target,
    validate_name,
)
from bootagent.pairs import BOOT_MOUNTPOINT, PairLayout, boot_refusal, layout_for, pair_up, with_boot_halves
from bootagent.prune import PrunePlan, RetentionPolicy, plan_prune, protected_reason
from bootagent.resume import Resolution, ResumeContext, resolve_pending
from bootagent.zfs.interface import DiffEntry, ZfsBackend

LOG = logging.getLogger(__name__)

__all__ = [
    "BootEnvironments",
    "Inventory",  # re-exported: it lives in bootagent.inventory
    "RollForwardResult",
    "RollbackResult",
    "check_description",
    "unique_name",
]

MAX_DESCRIPTION = 1024
MOUNT_BASE = "/run/bootagent/mnt"


@dataclass(frozen=True)
class RollbackResult:
    target: Snapshot
    environment: str  # the environment now active (new for a non-destructive rollback)
    destroyed: tuple[str, ...] = ()
    destructive: bool = False


@dataclass(frozen=True)
class RollForwardResult:
    environment: str  # the environment now active
    source: str  # the snapshot or environment rolled forward to
    created: bool


def running_environment(root: str, mounts: Mapping[str, str]) -> str | None:
    """The name of the environment mounted at / (mount point -> dataset), None when / is none of `root`'s."""
    dataset = mounts.get("/")
    return dataset.rsplit("/", 1)[-1] if dataset and dataset.startswith(root + "/") else None


class BootEnvironments:
    def __init__(
        self,
        zfs: ZfsBackend,
        config: Config,
        pool: str,
        journal: Journal,
        boot: BootStore,
        *,
        clock: Callable[[], float] = time.time,
        kernel_release: Callable[[], str] = lambda: os.uname().release,
        mount_base: str = MOUNT_BASE,
    ) -> None:
        self.zfs = zfs
        self.config = config
        self.pool = pool
        self.journal = journal
        self.boot = boot
        self.clock = clock
        self.kernel_release = kernel_release
        self.mount_base = mount_base
        self.root = config.root_container(pool)
        self.resolutions: list[Resolution] = []  # operations cut short earlier, closed by this instance
        self._resumed = False
        self._layout: PairLayout | None = None

    @property
    def layout(self) -> PairLayout:
        """Where the halves of an environment live (one pool, or a boot pool beside it), found once."""
        if self._layout is None:
            warnings: list[str] = []
            self._layout = layout_for(self.zfs, self.config, self.pool, warnings)
            for warning in warnings:
                LOG.warning("%s", warning)
        return self._layout

    # --- operations cut short --------------------------------------------------------------------------
    def resume_pending(self) -> list[Resolution]:
        """Finish or undo what a power cut left pending (bootagent.resume), once, before the first change."""
        if self._resumed:
            return []
        self._resumed = True
        ctx = ResumeContext(
            zfs=self.zfs,
            boot=self.boot,
            journal=self.journal,
            pool=self.pool,
            root=self.root,
            refusal=self._refusal_now,
            boot_root=self.layout.boot,
        )
        done = resolve_pending(ctx)
        self.resolutions.extend(done)
        return done

    def _refusal_now(self, target: str) -> str | None:
        try:
            return self.destroy_refusal(self.inventory(), target)
        except BootagentError as exc:
            return exc.message

    # --- reading -------------------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        pool = self.zfs.pool_info(self.pool)
        tree = self.zfs.list_tree(self.root)
        mounts = self.zfs.mounts()
        choice = self.boot.read()
        envs, orphans, boot_problem = self._paired(assemble(self.root, tree))
        names = {e.name for e in envs}
        running = running_environment(self.root, mounts)
        active = (
            pool.bootfs.rsplit("/", 1)[-1]
            if pool.bootfs and pool.bootfs.startswith(self.root + "/")
            else None
        )
        if active is None and choice.default in names:
            active = choice.default
        once = choice.once if choice.once in names else None
        if choice.once and once is None:
            LOG.warning("the next-boot choice %r names no existing environment; ignoring it", choice.once)
        lkg = last_known_good(envs)
        return Inventory(
            pool=pool,
            root=self.root,
            environments=tuple(envs),
            state=BootState(active=active, next_once=once, running=running, last_known_good=lkg),
            boot_choice=choice,
            boot=self.layout.boot,
            orphans=orphans,
            boot_problem=boot_problem,
        )

    def _paired(
        self, envs: list[BootEnvironment]
    ) -> tuple[list[BootEnvironment], tuple[str, ...], str | None]:
        layout = self.layout
        if layout.boot is None:
            return envs, (), None
        try:
            boot_tree = self.zfs.list_tree(layout.boot)
        except BootagentError as exc:
            why = f"the boot pool's {layout.boot} cannot be read ({exc.message})"
            LOG.warning("%s: no environment can be booted or changed", why)
            return (
                [
                    replace(
                        e,
                        missing_half=why,
                        snapshots=tuple(replace(s, missing_half=why) for s in e.snapshots),
                    )
                    for e in envs
                ],
                (),
                why,
            )
        paired = pair_up(layout, envs, boot_tree)
        return list(paired.environments), paired.orphans, None

    def _check_pairs_readable(self, inv: Inventory) -> None:
        """With the boot pool unreadable nothing changes: a change to the root halves alone would leave
        every pair it touches with halves from two different states."""
        if inv.boot_problem is not None:
            pool = inv.boot.split("/", 1)[0] if inv.boot else "the boot pool"
            raise RefusedError(
                f"{inv.boot_problem}: nothing is changed until both halves of the environments can be",
                hint=f"import {pool} ('zpool import {pool}') and try again",
            )

    def _snapshot_pair(self, env: BootEnvironment, full: str, props: dict[str, str]) -> str | None:
        """Snapshot `full` (ENV's dataset@NAME) and, right after, its /boot half with the same pair mark;
        a /boot half that cannot be taken takes the first half back with it. Returns the boot half."""
        if (why := boot_refusal(env)) is not None:
            raise RefusedError(why, hint=_PAIR_HINT)
        boot = self.layout.boot_half(full) if env.boot_dataset else None
        if boot is None:
            self.zfs.snapshot([full], props)
            return None
        props = {**props, Prop.PAIR.value: f"{int(self.clock())}-{secrets.token_hex(4)}"}
        self.zfs.snapshot([full], props)
        try:
            self.zfs.snapshot([boot], props)
        except BaseException:
            LOG.error("could not take the /boot half %s; removing %s again", boot, full)
            self.zfs.destroy([full])
            raise
        return boot

    # --- checkpoints ---------------------------------------------------------------------------------
    def checkpoint(
        self,
        env_name: str | None = None,
        *,
        name: str | None = None,
        description: str = "",
        created_by: CreatedBy = CreatedBy.MANUAL,
    ) -> Snapshot:
        self.resume_pending()
        inv = self.inventory()
        env = inv.find(env_name) if env_name else inv.current()
        snap_name = (
            validate_name(name, what="snapshot name") if name is not None else self.auto_name(created_by)
        )
        description = check_description(description)
        if any(s.name == snap_name for s in env.snapshots):
            raise UsageError(f"{env.name}@{snap_name} already exists", hint="choose another name")
        self._check_pairs_readable(inv)
        if (why := boot_refusal(env)) is not None:
            raise RefusedError(why, hint=_PAIR_HINT)
        if inv.pool.free_percent < self.config.retention.min_free_percent:
            self._make_room(inv)
        full = f"{env.dataset}@{snap_name}"
        props = {Prop.DESCRIPTION.value: description, Prop.CREATED_BY.value: created_by.value}
        data = {"snapshot": full}
        if env.boot_dataset and (boot := self.layout.boot_half(full)):
            data["boot"] = boot
        with self.journal.operation("checkpoint", f"{env.name}@{snap_name}", detail=description, data=data):
            self._snapshot_pair(env, full, props)
        return self.inventory().find_snapshot(env.name, snap_name)

    def auto_name(self, created_by: CreatedBy) -> str:
        prefix = {
            CreatedBy.PACKAGE_MANAGER: "apt",
            CreatedBy.AUTOMATIC: "auto",
            CreatedBy.AGENT: "agent",
        }.get(created_by, "cp")
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%d-%H%M%S")
        return f"{prefix}-{stamp}"

    def _make_room(self, inv: Inventory) -> None:
        """Below min_free_percent a checkpoint first frees space (by the space rule only), so the pool never
        ends up where it can neither checkpoint nor prune."""
        policy = replace(self.retention_policy(), keep_count=1 << 30, max_age_days=0)
        plan = self.plan_prune(inv, policy)
        if plan.items:
            LOG.warning(
                "free space %.1f%% is below %d%%: pruning %d old checkpoint(s) first",
                inv.pool.free_percent,
                self.config.retention.min_free_percent,
                len(plan.items),
            )
            self._destroy_planned(plan, inv)

    # --- new environments ----------------------------------------------------------------------------
    def create(
        self,
        name: str,
        source: str | None = None,
        *,
        description: str = "",
        created_by: CreatedBy = CreatedBy.MANUAL,
        rolled_back_from: str | None = None,
    ) -> BootEnvironment:
        """Clone a new environment from an environment (snapshotted first) or any of its snapshots."""
        self.resume_pending()
        validate_name(name, what="environment name")
        description = check_description(description)
        inv = self.inventory()
        self._check_pairs_readable(inv)
        if any(e.name == name for e in inv.environments):
            raise UsageError(f"boot environment {name!r} already exists", hint="choose another name")
        if self.zfs.exists(f"{self.root}/{name}"):
            raise UsageError(f"{self.root}/{name} already exists")
        if (stale := self.layout.boot_half(f"{self.root}/{name}")) and self.zfs.exists(stale):
            raise RefusedError(
                f"{stale} exists without a root half: a new environment {name} would be paired with it",
                hint=f"choose another name, or look at it and destroy it with 'zfs destroy -r {stale}'",
            )
        src_env: BootEnvironment
        if source is None:
            src_env, snap_name = inv.current(), None
        else:
            env_name, snap_name = split_target(source)
            src_env = inv.find(env_name)
            if snap_name is not None and (why := boot_refusal(inv.find_snapshot(env_name, snap_name))):
                raise RefusedError(why, hint=_PAIR_HINT)
        if (why := boot_refusal(src_env)) is not None:
            raise RefusedError(why, hint=_PAIR_HINT)
        dataset = f"{self.root}/{name}"
        data = {"source": source or src_env.name, "dataset": dataset}
        boot_dataset = self.layout.boot_half(dataset) if src_env.boot_dataset else None
        if boot_dataset:
            data["boot"] = boot_dataset
        with self.journal.operation("create", name, detail=description, data=data) as op:
            if snap_name is None:
                snap_name = f"create-{name}"[:MAX_NAME]
                if any(s.name == snap_name for s in src_env.snapshots):
                    snap_name = self.auto_name(CreatedBy.AUTOMATIC)
                self._snapshot_pair(
                    src_env,
                    f"{src_env.dataset}@{snap_name}",
                    {
                        Prop.DESCRIPTION.value: f"source of {name}",
                        Prop.CREATED_BY.value: CreatedBy.AUTOMATIC.value,
                    },
                )
            origin = f"{src_env.dataset}@{snap_name}"
            props = {
                Prop.DESCRIPTION.value: description or f"from {src_env.name}@{snap_name}",
                Prop.CREATED_BY.value: created_by.value,
            }
            if src_env.kernel:
                props[Prop.KERNEL.value] = src_env.kernel
            if rolled_back_from:
                props[Prop.ROLLED_BACK_FROM.value] = rolled_back_from
            self.zfs.clone(dataset, origin, props)
            made = [dataset]
            try:
                self.zfs.set_native(dataset, {"canmount": "noauto", "mountpoint": "/"})
                if boot_dataset:
                    boot_origin = self.layout.boot_half(origin)
                    assert boot_origin is not None
                    self.zfs.clone(boot_dataset, boot_origin, {})
                    made.append(boot_dataset)
                    self.zfs.set_native(boot_dataset, {"canmount": "noauto", "mountpoint": BOOT_MOUNTPOINT})
            except BaseException:
                LOG.error("could not finish %s; removing the half-made clone", " + ".join(made))
                self.zfs.destroy(made[::-1])
                raise
            LOG.info("created %s from %s (journal op %s)", dataset, origin, op.op)
        return self.inventory().find(name)

    # --- activation ----------------------------------------------------------------------------------
    def activate(self, name: str, *, once: bool = False) -> BootEnvironment:
        self.resume_pending()
        inv = self.inventory()
        env = inv.find(name)
        if (why := boot_refusal(env)) is not None:
            raise RefusedError(why, hint=_PAIR_HINT)
        if once:
            with self.journal.operation("activate-once", name, data={"dataset": env.dataset}):
                self.boot.set_once(name)
        else:
            with self.journal.operation("activate", name, data={"dataset": env.dataset}):
                self.boot.set_default(self.pool, env.dataset, name)
                if inv.boot_choice.once == name:
                    self.boot.set_once(None)
                if env.failed:  # a person chose it: automatic recovery may again
                    self.zfs.inherit_user(env.dataset, Prop.FAILED.value)
        return env

    # --- rollback and roll forward -------------------------------------------------------------------
    def resolve_history_target(
        self, inv: Inventory, env: BootEnvironment, *, steps: int | None, to: str | None
    ) -> Snapshot:
        history = inv.history(env)
        if to is not None:
            if "@" in to:
                env_name, snap_name = split_target(to)
                return inv.find_snapshot(env_name, snap_name or "")
            validate_name(to, what="snapshot name")
            for snap in history:
                if snap.name == to:
                    return snap
            raise NotFoundError(
                f"{to!r} is not in the history of {env.name}",
                hint="give ENV@SNAPSHOT, or see 'bootagent list --history " + env.name + "'",
            )
        count = 1 if steps is None else steps
        if count < 1:
            raise UsageError("--steps must be 1 or more")
        if not history:
            raise RefusedError(
                f"{env.name} has no earlier state to roll back to",
                hint=f"create checkpoints with 'bootagent checkpoint {env.name}'",
            )
        if count > len(history):
            raise RefusedError(
                f"{env.name} has only {len(history)} earlier state(s); cannot go back {count}",
                hint="see 'bootagent list --history'",
            )
        return history[count - 1]

    def rollback(
        self,
        env_name: str | None = None,
        *,
        steps: int | None = None,
        to: str | None = None,
        destructive: bool = False,
        new_name: str | None = None,
        created_by: CreatedBy = CreatedBy.MANUAL,
    ) -> RollbackResult:
        self.resume_pending()
        inv = self.inventory()
        self._check_pairs_readable(inv)
        env = inv.find(env_name) if env_name else inv.current()
        target = self.resolve_history_target(inv, env, steps=steps, to=to)
        if destructive:
            return self._rollback_in_place(inv, env, target)
        name = new_name or unique_name(
            f"{target.environment}-{target.name}", [e.name for e in inv.environments]
        )
        with self.journal.operation("rollback", env.name, data={"target": target.label, "new": name}):
            new_env = self.create(
                name,
                target.label,
                description=f"rollback of {env.name} to {target.label}",
                created_by=created_by,
                rolled_back_from=env.name,
            )
            self.activate(new_env.name)
        return RollbackResult(target=target, environment=new_env.name)

    def _rollback_in_place(self, inv: Inventory, env: BootEnvironment, target: Snapshot) -> RollbackResult:
        if (why := boot_refusal(target)) is not None:
            raise RefusedError(why, hint=_PAIR_HINT)
        if target.dataset != env.dataset:
            raise RefusedError(
                f"{target.label} is not a snapshot of {env.name}; "
                "an in-place rollback stays in one environment",
                hint="use a non-destructive rollback (without --destroy-newer)",
            )
        if env.name == inv.state.running:
            raise RefusedError(
                f"{env.name} is the running system; it cannot be rolled back in place under itself",
                hint="roll back without --destroy-newer (a new environment), or do it from the boot menu",
            )
        newer = [
            s for s in self._with_holds(env, only_prunable=False).snapshots if s.createtxg > target.createtxg
        ]
        blockers = [f"{s.label} ({why})" for s in newer if (why := _destroy_blocker(s)) is not None]
        if env.boot_dataset and env.boot_dataset in self.zfs.mounts().values():
            blockers.append(
                f"its /boot half {env.boot_dataset} (mounted: it would be rolled back under a system)"
            )
        if blockers:
            raise RefusedError(
                "an in-place rollback would destroy protected snapshots: " + ", ".join(blockers),
                hint="use a non-destructive rollback, or clear the keep flag / destroy the clones first",
            )
        data = {"target": target.label, "destroys": " ".join(s.name for s in newer)}
        if (
            target.boot_name
        ):  # the /boot halves this rollback destroys (hand-made root snapshots may have none)
            data["boot"] = target.boot_name
            data["boot_destroys"] = " ".join(s.boot_name for s in newer if s.boot_name)
        with self.journal.operation("rollback-destroy-newer", env.name, data=data):
            destroyed = self.zfs.rollback_destroying_newer(target.full_name)
            if target.boot_name:
                destroyed += self.zfs.rollback_destroying_newer(target.boot_name)
        return RollbackResult(
            target=target, environment=env.name, destroyed=tuple(destroyed), destructive=True
        )

    def roll_forward(self, env_name: str | None = None, *, steps: int | None = None) -> RollForwardResult:
        self.resume_pending()
        inv = self.inventory()
        env = inv.find(env_name) if env_name else inv.current()
        if not env.rolled_back_from:
            raise RefusedError(
                f"nothing to roll forward to: {env.name} was not made by a rollback",
                hint="activate any newer environment with 'bootagent activate NAME'",
            )
        source = inv.find(env.rolled_back_from)
        history = inv.history(source)
        position = next((i for i, s in enumerate(history) if s.full_name == env.origin), len(history))
        forward: list[Snapshot | BootEnvironment] = [*reversed(history[:position]), source]
        count = len(forward) if steps is None else steps
        if count < 1:
            raise UsageError("--steps must be 1 or more")
        if count > len(forward):
            raise RefusedError(
                f"{env.name} is {len(forward)} step(s) behind {source.name}; cannot go forward {count}"
            )
        target = forward[count - 1]
        name = (
            target.name
            if isinstance(target, BootEnvironment)
            else unique_name(f"{target.environment}-{target.name}", [e.name for e in inv.environments])
        )
        with self.journal.operation("roll-forward", env.name, data={"to": _label(target), "new": name}):
            if isinstance(target, BootEnvironment):
                self.activate(target.name)
                return RollForwardResult(environment=target.name, source=target.name, created=False)
            new_env = self.create(
                name,
                target.label,
                description=f"roll forward of {env.name} to {target.label}",
                rolled_back_from=source.name,
            )
            self.activate(new_env.name)
        return RollForwardResult(environment=new_env.name, source=target.label, created=True)

    # --- destroy and prune ---------------------------------------------------------------------------
    def destroy_refusal(self, inv: Inventory, target: str) -> str | None:
        """Why `target` (ENV or ENV@SNAP) may not be destroyed, or None."""
        env_name, snap_name = split_target(target)
        env = inv.find(env_name)
        if snap_name is not None:
            inv.find_snapshot(env_name, snap_name)
            snap = next(
                s for s in self._with_holds(env, only_prunable=False).snapshots if s.name == snap_name
            )
            return _destroy_blocker(snap)
        flags = inv.flags(env)
        for flag, why in (
            (Flag.RUNNING, "it is the running system"),
            (Flag.ACTIVE, "it is the active (default) boot environment"),
            (Flag.NEXT_BOOT, "it is chosen for the next boot"),
            (Flag.LAST_KNOWN_GOOD, "it is the last-known-good environment (the automatic fallback)"),
            (Flag.KEEP, "it has the keep flag"),
        ):
            if flag in flags:
                return why
        if env.mounted:
            return f"it is mounted at {env.mountpoint}"
        for snap in self._with_holds(env, only_prunable=False).snapshots:
            if (blocker := _destroy_blocker(snap)) is not None:
                return f"its snapshot {snap.label} is protected: {blocker}"
        return None

    def check_destroyable(self, inv: Inventory, targets: Sequence[str]) -> None:
        """Raise RefusedError naming every target that may not be destroyed, and why."""
        refusals = [f"{t}: {why}" for t in targets if (why := self.destroy_refusal(inv, t)) is not None]
        if refusals:
            raise RefusedError(
                "refusing to destroy (nothing was changed):\n  " + "\n  ".join(refusals),
                hint="activate another environment first, or clear the keep flag with "
                "'bootagent keep --off NAME'",
            )

    def destroy(self, targets: Sequence[str]) -> list[str]:
        self.resume_pending()
        inv = self.inventory()
        self._check_pairs_readable(inv)
        self.check_destroyable(inv, targets)
        names: list[str] = []
        for target in targets:
            env_name, snap_name = split_target(target)
            env = inv.find(env_name)
            if snap_name is None:
                names.extend(s.full_name for s in env.snapshots)
                names.append(env.dataset)
                if env.boot_dataset:  # its /boot half's snapshots that have no root half go with it
                    names.extend(o for o in inv.orphans if o.startswith(env.boot_dataset + "@"))
            else:
                names.append(f"{env.dataset}@{snap_name}")
        names = with_boot_halves(names, inv.environments)
        with self.journal.operation("destroy", " ".join(targets), data={"datasets": " ".join(names)}):
            self.zfs.destroy(names)
        return names

    def retention_policy(self) -> RetentionPolicy:
        r = self.config.retention
        return RetentionPolicy(
            keep_count=r.keep_count,
            max_age_days=r.max_age_days,
            min_free_percent=r.min_free_percent,
            min_keep=r.min_keep,
            prune_created_by=tuple(r.prune_created_by),
        )

    def plan_prune(self, inv: Inventory | None = None, policy: RetentionPolicy | None = None) -> PrunePlan:
        inv = inv or self.inventory()
        envs = [self._with_holds(e) for e in inv.environments]
        return plan_prune(
            envs,
            policy or self.retention_policy(),
            now=self.clock(),
            pool_size=inv.pool.size,
            pool_free=inv.pool.free,
        )

    def _with_holds(self, env: BootEnvironment, *, only_prunable: bool = True) -> BootEnvironment:
        """The environment with the hold tags of its snapshots filled in (a listing does not carry them).
        With only_prunable, snapshots already protected for another reason are not asked about."""
        policy = self.retention_policy()
        snaps = tuple(
            replace(s, holds=self.zfs.holds(s.full_name))
            if not only_prunable or protected_reason(s, policy) is None
            else s
            for s in env.snapshots
        )
        return replace(env, snapshots=snaps)

    def prune(self, *, dry_run: bool = False) -> PrunePlan:
        if not dry_run:
            self.resume_pending()
        inv = self.inventory()
        plan = self.plan_prune(inv)
        if not dry_run and plan.items:
            self._check_pairs_readable(inv)
            self._destroy_planned(plan, inv)
        return plan

    def _destroy_planned(self, plan: PrunePlan, inv: Inventory) -> None:
        names = with_boot_halves(plan.names, inv.environments)
        with self.journal.operation(
            "prune", f"{len(plan.items)} checkpoint(s)", data={"datasets": " ".join(names)}
        ):
            self.zfs.destroy(names)

    # --- flags ---------------------------------------------------------------------------------------
    def set_keep(self, target: str, keep: bool) -> None:
        self.resume_pending()
        inv = self.inventory()
        env_name, snap_name = split_target(target)
        env = inv.find(env_name)
        name = env.dataset if snap_name is None else inv.find_snapshot(env_name, snap_name).full_name
        with self.journal.operation("keep" if keep else "unkeep", target, data={"dataset": name}):
            if keep:
                self.zfs.set_user(name, {Prop.KEEP.value: "on"})
            else:
                self.zfs.inherit_user(name, Prop.KEEP.value)

    def mark_good(self, env_name: str | None = None) -> BootEnvironment:
        """Record that `env` (default: the running one) booted and passed its health checks."""
        self.resume_pending()
        inv = self.inventory()
        env = inv.find(env_name) if env_name else inv.current()
        self.record_good(inv, env)
        return self.inventory().find(env.name)

    def record_good(self, inv: Inventory, env: BootEnvironment) -> None:
        """mark_good's journalled step, on an inventory listed after resume_pending (bless lists once)."""
        props = {Prop.LAST_GOOD.value: str(int(self.clock()))}
        data = {"dataset": env.dataset, "value": props[Prop.LAST_GOOD.value]}
        if env.name == inv.state.running:
            props[Prop.KERNEL.value] = self.kernel_release()
        with self.journal.operation("mark-good", env.name, data=data):
            self.zfs.set_user(env.dataset, props)

    # --- looking at old versions ---------------------------------------------------------------------
    def dataset_of(self, inv: Inventory, target: str) -> str:
        env_name, snap_name = split_target(target)
        env = inv.find(env_name)
        if snap_name is None:
            return env.dataset
        return inv.find_snapshot(env_name, snap_name).full_name

    def mount(self, target: str, path: str | None = None) -> str:
        inv = self.inventory()
        name = self.dataset_of(inv, target)
        for mountpoint, dataset in self.zfs.mounts().items():
            if dataset == name:
                raise RefusedError(
                    f"{target} is already mounted at {mountpoint}",
                    hint="mount one of its snapshots instead" if mountpoint == "/" else None,
                )
        where = path or os.path.join(self.mount_base, target)
        os.makedirs(where, exist_ok=True)
        if os.listdir(where):
            raise RefusedError(f"{where} is not empty", hint="choose an empty directory")
        self.zfs.mount(name, where)
        boot = self._boot_half_of(inv, target)
        if boot is not None:
            inside = os.path.join(where, BOOT_MOUNTPOINT.lstrip("/"))
            if os.path.isdir(inside):
                try:
                    self.zfs.mount(boot, inside)
                except BaseException:
                    self.zfs.unmount(where)  # never half a pair mounted
                    raise
            else:
                LOG.warning("%s has no /boot directory; its /boot half %s is not mounted", target, boot)
        return where

    def _boot_half_of(self, inv: Inventory, target: str) -> str | None:
        env_name, snap_name = split_target(target)
        env = inv.find(env_name)
        if snap_name is None:
            return env.boot_dataset
        return inv.find_snapshot(env_name, snap_name).boot_name

    def umount(self, target_or_path: str) -> str:
        mounts = self.zfs.mounts()
        if target_or_path.startswith("/"):
            path = os.path.normpath(target_or_path)
            if path not in mounts:
                raise NotFoundError(f"nothing from ZFS is mounted at {path}")
        else:
            inv = self.inventory()
            name = self.dataset_of(inv, target_or_path)
            found = [p for p, d in mounts.items() if d == name and p != "/"]
            if not found:
                raise NotFoundError(f"{target_or_path} is not mounted")
            path = found[0]
        if path == "/":
            raise RefusedError("refusing to unmount the running root")
        inside = os.path.join(path, BOOT_MOUNTPOINT.lstrip("/"))
        if path != "/" and inside in mounts:  # a pair's /boot half, mounted inside it
            self.zfs.unmount(inside)
        self.zfs.unmount(path)
        if path.startswith(self.mount_base + "/"):
            try:
                os.rmdir(path)
            except OSError:
                LOG.debug("left %s in place", path)
        return path

    def diff(self, older: str, newer: str) -> list[DiffEntry]:
        inv = self.inventory()
        a = self.dataset_of(inv, older)
        b = self.dataset_of(inv, newer)
        if "@" not in a:
            raise UsageError(
                f"the first state must be a snapshot (got {older})",
                hint=f"compare a snapshot with a later one or with the environment: "
                f"'bootagent diff {older}@SNAPSHOT {newer}'",
            )
        if a.split("@", 1)[0] != b.split("@", 1)[0]:
            raise UsageError(
                f"{older} and {newer} belong to different environments",
                hint="compare two snapshots of one environment, or a snapshot with its environment",
            )
        return self.zfs.diff(a, b)


# --- helpers -----------------------------------------------------------------------------------------
_PAIR_HINT = "see 'bootagent list': both halves of a pair (root pool and boot pool) must be there"


def _label(target: Snapshot | BootEnvironment) -> str:
    return target.label if isinstance(target, Snapshot) else target.name


def _destroy_blocker(snap: Snapshot) -> str | None:
    if snap.keep:
        return "it has the keep flag"
    if FACTORY_HOLD_TAG in snap.holds:
        return "it is part of the factory baseline"
    if snap.holds:
        return "it is held (" + ", ".join(sorted(snap.holds)) + ")"
    if snap.clones:
        return "boot environments were cloned from it: " + ", ".join(
            c.rsplit("/", 1)[-1] for c in snap.clones
        )
    if snap.mounted:
        return f"it is mounted (unmount it with 'bootagent umount {snap.label}')"
    return None


def check_description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise UsageError(f"the description is {len(text)} characters long; at most {MAX_DESCRIPTION}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(
            "the description contains control characters (tab, newline, ...)",
            hint="write it on one line",
        )
    return text


def unique_name(base: str, existing: Iterable[str]) -> str:
    taken = set(existing)
    base = base[:MAX_NAME]
    if base not in taken:
        return validate_name(base)
    for n in range(2, 1000):
        suffix = f"-{n}"
        candidate = base[: MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return validate_name(candidate)
    raise BootagentError(f"no free name near {base!r}")
