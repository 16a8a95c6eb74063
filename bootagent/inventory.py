"""Reading the boot environments: the flat ZFS listing assembled into environments with their snapshots,
and the boot state around them. Plain values and pure functions; the operations are in environments.py."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bootagent.bootstate import BootChoice
from bootagent.errors import NotFoundError, UsageError
from bootagent.model import (
    BootEnvironment,
    BootState,
    CreatedBy,
    DatasetInfo,
    DatasetKind,
    Flag,
    PoolInfo,
    Prop,
    Snapshot,
)
from bootagent.names import validate_name

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inventory:
    pool: PoolInfo
    root: str  # "<pool>/<root>"
    environments: tuple[BootEnvironment, ...]  # oldest first
    state: BootState
    boot_choice: BootChoice
    boot: str | None = None  # "<boot pool>/<boot_root>" in a two-pool layout (bootagent.pairs)
    orphans: tuple[str, ...] = ()  # boot halves without a root half
    boot_problem: str | None = None  # why the boot pool's halves cannot be read: nothing may change

    def find(self, name: str) -> BootEnvironment:
        """The environment called `name`; a name outside the rule is refused with its reason even when a
        hand-made environment has it (bootagent cannot boot or change it safely)."""
        validate_name(name, what="environment name")
        for env in self.environments:
            if env.name == name:
                return env
        close = difflib.get_close_matches(name, [e.name for e in self.environments], n=1)
        raise NotFoundError(
            f"no boot environment {name!r} in {self.root}",
            hint=f"did you mean {close[0]!r}?" if close else "see 'bootagent list'",
        )

    def find_snapshot(self, env_name: str, snap_name: str) -> Snapshot:
        env = self.find(env_name)
        validate_name(snap_name, what="snapshot name")
        for snap in env.snapshots:
            if snap.name == snap_name:
                return snap
        close = difflib.get_close_matches(snap_name, [s.name for s in env.snapshots], n=1)
        raise NotFoundError(
            f"boot environment {env_name!r} has no snapshot {snap_name!r}",
            hint=f"did you mean {env_name}@{close[0]}?" if close else f"see 'bootagent list {env_name}'",
        )

    def by_dataset(self, dataset: str) -> BootEnvironment | None:
        for env in self.environments:
            if env.dataset == dataset:
                return env
        return None

    def snapshot_by_full_name(self, full_name: str) -> Snapshot | None:
        dataset, _, name = full_name.partition("@")
        env = self.by_dataset(dataset)
        if env is None:
            return None
        return next((s for s in env.snapshots if s.name == name), None)

    def flags(self, env: BootEnvironment) -> tuple[Flag, ...]:
        out: list[Flag] = []
        if env.name == self.state.active:
            out.append(Flag.ACTIVE)
        if env.name == self.state.next_once:
            out.append(Flag.NEXT_BOOT)
        if env.name == self.state.running:
            out.append(Flag.RUNNING)
        if env.name == self.state.last_known_good:
            out.append(Flag.LAST_KNOWN_GOOD)
        if env.keep:
            out.append(Flag.KEEP)
        return tuple(out)

    def current(self) -> BootEnvironment:
        """The environment an operation applies to by default: the running one, else the active one."""
        name = self.state.running or self.state.active
        if name is None:
            raise UsageError(
                "no environment is running or active, so there is no default",
                hint="name the environment explicitly",
            )
        return self.find(name)

    def history(self, env: BootEnvironment) -> list[Snapshot]:
        """Earlier states of `env`, newest first: its own snapshots, then the snapshot it was cloned from
        and the older snapshots of that environment, and so on (first-parent history)."""
        out: list[Snapshot] = []
        seen: set[str] = set()
        current: BootEnvironment | None = env
        upto: int | None = None  # only snapshots at or before this txg in an ancestor
        while current is not None and current.dataset not in seen:
            seen.add(current.dataset)
            snaps = [s for s in current.snapshots if upto is None or s.createtxg <= upto]
            out.extend(sorted(snaps, key=lambda s: s.createtxg, reverse=True))
            if not current.origin:
                break
            origin = self.snapshot_by_full_name(current.origin)
            if origin is None:
                break
            upto = origin.createtxg
            current = self.by_dataset(origin.dataset)
        return out


def assemble(root: str, tree: Sequence[DatasetInfo]) -> list[BootEnvironment]:
    """Build the environments (direct children of `root`) with their snapshots from a flat listing."""
    clones: dict[str, list[str]] = {}
    for ds in tree:
        if ds.origin:
            clones.setdefault(ds.origin, []).append(ds.name)
    snaps_by_ds: dict[str, list[DatasetInfo]] = {}
    for ds in tree:
        if ds.kind is DatasetKind.SNAPSHOT:
            snaps_by_ds.setdefault(ds.dataset, []).append(ds)
    envs: list[BootEnvironment] = []
    for ds in tree:
        if ds.kind is not DatasetKind.FILESYSTEM or ds.name.rpartition("/")[0] != root:
            continue
        name = ds.short_name
        snapshots = tuple(
            _snapshot(name, s, clones.get(s.name, []))
            for s in sorted(snaps_by_ds.get(ds.name, []), key=lambda s: s.createtxg)
        )
        envs.append(
            BootEnvironment(
                name=name,
                dataset=ds.name,
                created=ds.creation,
                used=ds.used,
                referenced=ds.referenced,
                origin=ds.origin,
                mountpoint=ds.mountpoint,
                mounted=ds.mounted,
                kernel=ds.user_props.get(Prop.KERNEL.value) or None,
                description=ds.user_props.get(Prop.DESCRIPTION.value, ""),
                created_by=CreatedBy.parse(ds.user_props.get(Prop.CREATED_BY.value)),
                keep=_is_on(ds.user_props, Prop.KEEP),
                last_good=_int_or_none(ds.user_props.get(Prop.LAST_GOOD.value)),
                rolled_back_from=ds.user_props.get(Prop.ROLLED_BACK_FROM.value) or None,
                failed=ds.user_props.get(Prop.FAILED.value) or None,
                snapshots=snapshots,
                last_export=_int_or_none(ds.user_props.get(Prop.LAST_EXPORT.value)),
            )
        )
    envs.sort(key=lambda e: (e.created, e.name))
    return envs


def _snapshot(env: str, ds: DatasetInfo, clones: list[str]) -> Snapshot:
    return Snapshot(
        environment=env,
        dataset=ds.dataset,
        name=ds.short_name,
        created=ds.creation,
        createtxg=ds.createtxg,
        used=ds.used,
        referenced=ds.referenced,
        description=ds.user_props.get(Prop.DESCRIPTION.value, ""),
        created_by=CreatedBy.parse(ds.user_props.get(Prop.CREATED_BY.value)),
        keep=_is_on(ds.user_props, Prop.KEEP),
        clones=tuple(sorted(clones)),
        mounted=ds.mounted,
        pair_mark=ds.user_props.get(Prop.PAIR.value) or None,
    )


def _is_on(props: Mapping[str, str], prop: Prop) -> bool:
    return props.get(prop.value, "").strip().lower() in {"on", "yes", "true", "1"}


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        LOG.warning("ignoring a malformed timestamp %r", value)
        return None
    return number if number > 0 else None
