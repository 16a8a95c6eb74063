"""Carrying out a reset plan: each step idempotent, the plan saved after each, so a power cut at any moment
is finished by the next boot (every GRUB entry comes back into the agent while the grubenv flag is set).

The order is what keeps a cut-off reset safe: the plan and the GRUB flag before the first change; the
encrypted customer data destroyed first (keys and all); the new environment made and made the default
before any environment is removed; the request, the flag and the plan cleared last. A step recognises what
it already did by what the pool shows now: a dataset's guid against the recorded one, a clone's origin.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bootagent.bootstate import BootStore
from bootagent.errors import BootagentError, RefusedError
from bootagent.fsutil import atomic_write
from bootagent.journal import Journal, Outcome
from bootagent.model import FACTORY_HOLD_TAG, CreatedBy, DatasetKind, Prop
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import Recorded, ResetPlan, StepKind, key_file
from bootagent.reset.store import ResetStore
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)

STEP_LABELS = {
    StepKind.CRYPTO_ERASE: "destroying the encrypted customer datasets and their keys",
    StepKind.CLONE: "making the new boot environment from the factory baseline",
    StepKind.SET_DEFAULT: "making it the default",
    StepKind.REMOVE_ENVIRONMENTS: "removing the old boot environments",
    StepKind.RESTORE_CONFIG: "returning the config datasets to factory",
    StepKind.DESTROY_CUSTOMER: "destroying the customer datasets",
    StepKind.CREATE_CUSTOMER: "re-creating the customer datasets, empty",
    StepKind.DESTROY_UNCLASSIFIED: "destroying the unclassified datasets",
    StepKind.WIPE_FREE_SPACE: "overwriting and trimming the free space (zpool initialize, trim)",
    StepKind.FINISH: "finishing",
}


@dataclass
class ResetTarget:
    """What a reset changes: the pool, the boot choice, the journal, the state directory."""

    zfs: ZfsBackend
    boot: BootStore
    journal: Journal
    state_directory: str
    progress: Callable[[str], None] = field(default=lambda _m: None)
    clock: Callable[[], float] = time.time
    # after each step is saved (the tests and the VM scenarios cut the power here)
    after_step: Callable[[ResetPlan], None] = field(default=lambda _p: None)

    @property
    def store(self) -> ResetStore:
        return ResetStore(self.state_directory)


def begin(target: ResetTarget, plan: ResetPlan) -> ResetPlan:
    """Persist the intent: the journal's, the plan, and the GRUB flag -- before any change to the pool."""
    intent = target.journal.record(
        "factory-reset",
        plan.new_environment,
        Outcome.INTENT,
        detail=f"{plan.mode.value} to baseline {plan.baseline}"
        + (f" ({plan.reason})" if plan.reason else ""),
        data={"mode": plan.mode.value, "baseline": plan.baseline, "dataset": plan.new_dataset},
    )
    plan = replace(plan, op=intent.op)
    target.store.save_plan(plan)
    set_flag(target.boot, plan.mode)
    return plan


def set_flag(boot: BootStore, mode: ResetMode | None) -> None:
    """RESET_VAR in grubenv; a grubenv that cannot be written is said, not fatal (the plan in the state
    dataset still makes the agent resume when it runs, and bootagent-boot-start stops a half-reset root)."""
    try:
        boot.set_reset(mode.value if mode is not None else None)
    except BootagentError as exc:
        LOG.warning(
            "could not %s the reset flag in GRUB's environment block: %s",
            "set" if mode else "clear",
            exc.message,
        )


def carry_out(target: ResetTarget, plan: ResetPlan) -> ResetPlan:
    """Run the plan from its next step to its end; returns the completed plan."""
    total = len(plan.steps)
    while not plan.complete:
        step = plan.steps[plan.done]
        target.progress(f"factory reset, step {plan.done + 1} of {total}: {STEP_LABELS[step]}")
        started = time.monotonic()
        _STEPS[step](target, plan)
        LOG.info("reset step %s done in %.1f s", step.value, time.monotonic() - started)
        plan = plan.advanced()
        if plan.complete:
            break
        target.store.save_plan(plan)
        target.after_step(plan)
    return plan


# --- the steps -------------------------------------------------------------------------------------------
def _guid(zfs: ZfsBackend, name: str) -> str | None:
    if not zfs.exists(name):
        return None
    return zfs.properties(name).get("guid", "")


def destroy_tree(zfs: ZfsBackend, name: str) -> list[str]:
    """`name`, everything below it and all their snapshots; holds other than the factory's are released
    (a reset removes what a person held; a factory hold below a removed dataset refuses)."""
    if not zfs.exists(name):
        return []
    tree = zfs.list_tree(name)
    snapshots = [d.name for d in tree if d.kind is DatasetKind.SNAPSHOT]
    for snap in snapshots:
        tags = zfs.holds(snap)
        if FACTORY_HOLD_TAG in tags:
            raise RefusedError(f"{snap} is part of a factory baseline; {name} is not removed")
        for tag in sorted(tags):
            zfs.release(snap, tag)
    filesystems = sorted((d.name for d in tree if d.kind is DatasetKind.FILESYSTEM), key=len, reverse=True)
    names = [*snapshots, *filesystems]
    zfs.destroy(names)
    return names


def _destroy_recorded(target: ResetTarget, records: tuple[Recorded, ...]) -> None:
    """Children first; only a dataset that is still the recorded one (same guid) is destroyed."""
    for rec in sorted(records, key=lambda r: r.name.count("/"), reverse=True):
        guid = _guid(target.zfs, rec.name)
        if guid is None:
            continue
        if rec.guid and guid != rec.guid:
            LOG.info("%s is not the dataset the plan recorded (it was made again): left", rec.name)
            continue
        target.progress(f"destroying {rec.name}")
        destroy_tree(target.zfs, rec.name)


def _crypto_erase(target: ResetTarget, plan: ResetPlan) -> None:
    _destroy_recorded(target, tuple(r for r in plan.customers if r.encrypted))


def _clone(target: ResetTarget, plan: ResetPlan) -> None:
    zfs = target.zfs
    if zfs.exists(plan.new_dataset):
        info = next(d for d in zfs.list_tree(plan.new_dataset) if d.name == plan.new_dataset)
        if info.origin != plan.system_snapshot:
            raise RefusedError(f"{plan.new_dataset} exists but is not a clone of {plan.system_snapshot}")
    else:
        props = {
            Prop.DESCRIPTION.value: f"factory reset ({plan.mode.value}) to baseline {plan.baseline}",
            Prop.CREATED_BY.value: (
                CreatedBy.AUTOMATIC if plan.actor == "automatic" else CreatedBy.AGENT
            ).value,
        }
        if plan.kernel:
            props[Prop.KERNEL.value] = plan.kernel
        zfs.clone(plan.new_dataset, plan.system_snapshot, props)
    zfs.set_native(plan.new_dataset, {"canmount": "noauto", "mountpoint": "/"})


def _set_default(target: ResetTarget, plan: ResetPlan) -> None:
    target.boot.set_default(plan.pool, plan.new_dataset, plan.new_environment)
    target.boot.set_once(None)


def _remove_environments(target: ResetTarget, plan: ResetPlan) -> None:
    for dataset in plan.environments:
        if dataset != plan.new_dataset and target.zfs.exists(dataset):
            target.progress(f"removing {dataset}")
            destroy_tree(target.zfs, dataset)


def _restore_config(target: ResetTarget, plan: ResetPlan) -> None:
    """Each config dataset becomes a clone of its sealed copy: clone beside it, destroy the old one (only
    the recorded one, by guid), rename the clone into its place."""
    zfs = target.zfs
    for rec, snapshot in plan.configs:
        new = f"{rec.name}.reset"
        old_there = bool(rec.guid) and _guid(zfs, rec.name) == rec.guid
        props = rec.create_props()
        final_canmount = props.pop("canmount", "on")
        if not zfs.exists(new) and (old_there or not zfs.exists(rec.name)):
            target.progress(f"returning {rec.name} to {snapshot}")
            zfs.clone(new, snapshot, {k: v for k, v in props.items() if ":" in k})
            zfs.set_native(new, {**{k: v for k, v in props.items() if ":" not in k}, "canmount": "noauto"})
        if old_there:
            destroy_tree(zfs, rec.name)
        if zfs.exists(new) and not zfs.exists(rec.name):
            zfs.rename(new, rec.name)
        if final_canmount != "noauto" and zfs.exists(rec.name):
            zfs.set_native(rec.name, {"canmount": final_canmount})


def _destroy_customer(target: ResetTarget, plan: ResetPlan) -> None:
    _destroy_recorded(target, plan.customers)


def _create_customer(target: ResetTarget, plan: ResetPlan) -> None:
    zfs = target.zfs
    recreated = {r.name for r in plan.customers}
    for rec in sorted(plan.customers, key=lambda r: r.name.count("/")):
        guid = _guid(zfs, rec.name)
        if guid is not None:
            if rec.guid and guid == rec.guid:
                raise RefusedError(f"{rec.name} should have been destroyed, but is still the old dataset")
            continue  # made before the cut
        props = rec.create_props()
        canmount = props.pop("canmount", "on")
        root = rec.props.get("encryptionroot", "")
        inherits = rec.encrypted and root not in ("", "-", rec.name) and root in recreated
        if rec.encrypted and not inherits:
            path = key_file(target.state_directory, rec.name)
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                atomic_write(path, os.urandom(32), mode=0o400)
            props.update({"keyformat": "raw", "keylocation": f"file://{path}"})
        elif inherits:
            props.pop("encryption", None)
        target.progress(f"re-creating {rec.name}, empty")
        zfs.create(rec.name, {**props, "canmount": "noauto"})
        after = {"canmount": canmount} if canmount != "noauto" else {}
        if rec.encrypted and not inherits:
            after["keylocation"] = f"file://{key_file(plan.state_mountpoint, rec.name)}"
        if after:
            zfs.set_native(rec.name, after)


def _destroy_unclassified(target: ResetTarget, plan: ResetPlan) -> None:
    _destroy_recorded(target, plan.unclassified)


def _wipe(target: ResetTarget, plan: ResetPlan) -> None:
    try:
        target.zfs.wipe_free_space(plan.pool)
    except BootagentError as exc:  # the data is gone already; a wipe that cannot run must not loop the reset
        LOG.error("overwriting the free space failed: %s", exc.message)
        target.journal.record("factory-reset-wipe", plan.pool, Outcome.FAILED, detail=exc.message)
        target.progress(f"overwriting the free space failed ({exc.message}); the reset goes on")


def _finish(target: ResetTarget, plan: ResetPlan) -> None:
    now = int(target.clock())
    history = target.store.count_reset(plan, now)
    detail = (
        f"{plan.mode.value} to baseline {plan.baseline}: {plan.new_environment} "
        f"(reset number {history.count})"
    )
    if plan.op:
        target.journal.record("factory-reset", plan.new_environment, Outcome.OK, op=plan.op, detail=detail)
    target.store.clear_request()
    set_flag(target.boot, None)
    target.store.finish_plan(plan.advanced())


_STEPS: dict[StepKind, Callable[[ResetTarget, ResetPlan], None]] = {
    StepKind.CRYPTO_ERASE: _crypto_erase,
    StepKind.CLONE: _clone,
    StepKind.SET_DEFAULT: _set_default,
    StepKind.REMOVE_ENVIRONMENTS: _remove_environments,
    StepKind.RESTORE_CONFIG: _restore_config,
    StepKind.DESTROY_CUSTOMER: _destroy_customer,
    StepKind.CREATE_CUSTOMER: _create_customer,
    StepKind.DESTROY_UNCLASSIFIED: _destroy_unclassified,
    StepKind.WIPE_FREE_SPACE: _wipe,
    StepKind.FINISH: _finish,
}
