"""Factory baselines: what a factory reset goes back to, one per release, sealed once and never changed.

A baseline is a subtree of the factory container, every snapshot in it held with FACTORY_HOLD_TAG:

    <pool>/<factory>/<release>/system@<factory_snapshot>          a copy of the sealed boot environment
    <pool>/<factory>/<release>/config/<name>@<factory_snapshot>   a copy of each config dataset

The system snapshot carries the release, the time it was sealed and the config datasets sealed with it. A
reset clones these snapshots (O(1), whatever their size); nothing ever boots or changes them. Sealing holds
the config copies first and the system snapshot last: a seal cut short leaves no baseline that looks whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bootagent.config import Config
from bootagent.errors import NotFoundError, RefusedError
from bootagent.journal import Journal
from bootagent.model import FACTORY_HOLD_TAG, DatasetInfo, DatasetKind, Prop
from bootagent.names import name_problem, shown
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)

RELEASE = Prop.RELEASE.value
SEALED = Prop.SEALED.value  # epoch seconds
CONFIG_SET = Prop.CONFIG_DATASETS.value  # the config datasets sealed with it, space separated
SOURCE = Prop.SEALED_FROM.value
SEAL_SNAPSHOT = "bootagent-seal"  # the temporary snapshot of the sources while they are copied


@dataclass(frozen=True)
class Baseline:
    release: str
    container: str  # <pool>/<factory>/<release>
    system: str  # the system snapshot, <container>/system@<factory_snapshot>
    configs: tuple[tuple[str, str], ...]  # (config dataset, its sealed copy's snapshot)
    sealed: int
    kernel: str | None
    size: int  # referenced bytes of the system snapshot
    complete: bool  # every snapshot held and every recorded config copy present
    problem: str = ""

    def config_snapshot(self, dataset: str) -> str | None:
        return next((snap for ds, snap in self.configs if ds == dataset), None)


def config_copy(container: str, pool: str, dataset: str) -> str:
    """Where the sealed copy of config dataset `<pool>/<name>` lives."""
    return f"{container}/config/{dataset[len(pool) + 1 :]}"


def baselines(zfs: ZfsBackend, config: Config, pool: str) -> list[Baseline]:
    """Every baseline under the factory container, oldest first (an incomplete one is listed with why)."""
    factory = config.factory_container(pool)
    try:
        tree = zfs.list_tree(factory)
    except NotFoundError:
        return []
    by_name = {d.name: d for d in tree}
    snap = config.layout.factory_snapshot
    out: list[Baseline] = []
    for info in tree:
        parts = info.name[len(factory) + 1 :].split("/")
        if info.kind is not DatasetKind.FILESYSTEM or len(parts) != 2 or parts[1] != "system":
            continue
        container = f"{factory}/{parts[0]}"
        system = by_name.get(f"{info.name}@{snap}")
        if system is None:
            continue
        out.append(_baseline(zfs, pool, container, system, by_name, snap))
    return sorted(out, key=lambda b: (b.sealed, b.release))


def _baseline(
    zfs: ZfsBackend,
    pool: str,
    container: str,
    system: DatasetInfo,
    by_name: dict[str, DatasetInfo],
    snap: str,
) -> Baseline:
    props = system.user_props
    release = props.get(RELEASE) or container.rsplit("/", 1)[-1]
    recorded = props.get(CONFIG_SET, "").split()
    problems: list[str] = []
    configs: list[tuple[str, str]] = []
    for dataset in recorded:
        copy = f"{config_copy(container, pool, dataset)}@{snap}"
        if copy in by_name:
            configs.append((dataset, copy))
        else:
            problems.append(f"the copy of {dataset} ({copy}) is missing")
    for name in [system.name, *(c for _, c in configs)]:
        if FACTORY_HOLD_TAG not in zfs.holds(name):
            problems.append(f"{name} is not held (a seal cut short?)")
    if SEALED not in props:
        problems.append("it was never finished (no seal time)")
    try:
        sealed = int(props.get(SEALED, "0"))
    except ValueError:
        sealed = 0
    return Baseline(
        release=release,
        container=container,
        system=system.name,
        configs=tuple(configs),
        sealed=sealed,
        kernel=props.get(Prop.KERNEL.value) or None,
        size=system.referenced,
        complete=not problems,
        problem="; ".join(problems),
    )


def choose(found: Sequence[Baseline], release: str | None) -> Baseline:
    """The named baseline, else the newest complete one."""
    usable = [b for b in found if b.complete]
    if release is not None:
        match = next((b for b in found if b.release == release), None)
        if match is None:
            known = ", ".join(b.release for b in found) or "none"
            raise NotFoundError(
                f"there is no factory baseline {shown(release)} (sealed: {known})",
                hint="'bootagent factory list' shows them",
            )
        if not match.complete:
            raise RefusedError(f"the factory baseline {match.release} is incomplete: {match.problem}")
        return match
    if not usable:
        why = "; ".join(f"{b.release}: {b.problem}" for b in found)
        raise RefusedError(
            "there is no complete factory baseline to reset to" + (f" ({why})" if why else ""),
            hint="seal one on a freshly installed system with 'bootagent factory seal'",
        )
    return usable[-1]


def seal(
    zfs: ZfsBackend,
    config: Config,
    pool: str,
    journal: Journal,
    *,
    environment: str,
    release: str,
    kernel: str | None,
    replace: bool = False,
    clock: Callable[[], float] = time.time,
    progress: Callable[[str], None] = lambda _m: None,
) -> Baseline:
    """Copy `environment` (a dataset) and the config datasets into a new baseline for `release`."""
    problem = name_problem(release)
    if problem is not None:
        raise RefusedError(f"the release name {shown(release)} is not valid: {problem}")
    factory = config.factory_container(pool)
    container = f"{factory}/{release}"
    snap = config.layout.factory_snapshot
    existing = [b for b in baselines(zfs, config, pool) if b.container == container]
    if zfs.exists(container):
        if not replace:
            raise RefusedError(
                f"a factory baseline for release {release} exists already ({container})",
                hint="seal under another --release, or give --replace to seal it again",
            )
        _remove(zfs, container, existing)
    configs = [d for d in config.config_dataset_names(pool) if zfs.exists(d)]
    missing = [d for d in config.config_dataset_names(pool) if d not in configs]
    for dataset in missing:
        LOG.warning("the config dataset %s does not exist; it is not part of the baseline", dataset)
    sources = [environment, *configs]
    temporary = [f"{d}@{SEAL_SNAPSHOT}" for d in sources]
    with journal.operation(
        "factory-seal",
        release,
        data={
            "container": container,
            "snapshot": f"{container}/system@{snap}",
            "environment": environment,
            "configs": " ".join(configs),
        },
    ):
        zfs.destroy([t for t in temporary if zfs.exists(t)])
        zfs.snapshot(temporary, {Prop.DESCRIPTION.value: f"being sealed as factory baseline {release}"})
        try:
            for parent in (factory, container, f"{container}/config"):
                if not zfs.exists(parent):
                    zfs.create(parent, {"canmount": "off", "mountpoint": "none"})
            for dataset in configs:
                copy = config_copy(container, pool, dataset)
                _parents(zfs, copy, container)
                progress(f"copying {dataset} into the baseline")
                zfs.copy(
                    f"{dataset}@{SEAL_SNAPSHOT}",
                    f"{copy}@{snap}",
                    {"canmount": "noauto", "mountpoint": "none"},
                )
                zfs.hold(f"{copy}@{snap}", FACTORY_HOLD_TAG)
            progress(f"copying {environment} into the baseline (a full copy: this takes a while)")
            system = f"{container}/system"
            zfs.copy(
                f"{environment}@{SEAL_SNAPSHOT}",
                f"{system}@{snap}",
                {"canmount": "noauto", "mountpoint": "none"},
            )
            props = {
                RELEASE: release,
                CONFIG_SET: " ".join(configs),
                SOURCE: environment,
                Prop.DESCRIPTION.value: f"factory baseline {release}",
            }
            if kernel:
                props[Prop.KERNEL.value] = kernel
            zfs.set_user(f"{system}@{snap}", props)
            zfs.set_user(f"{system}@{snap}", {SEALED: str(int(clock()))})
            zfs.hold(f"{system}@{snap}", FACTORY_HOLD_TAG)
        finally:
            zfs.destroy([t for t in temporary if zfs.exists(t)])
    return next(b for b in baselines(zfs, config, pool) if b.container == container)


def _parents(zfs: ZfsBackend, dataset: str, container: str) -> None:
    parent = dataset.rpartition("/")[0]
    chain = []
    while parent != container and not zfs.exists(parent):
        chain.append(parent)
        parent = parent.rpartition("/")[0]
    for name in reversed(chain):
        zfs.create(name, {"canmount": "off", "mountpoint": "none"})


def _remove(zfs: ZfsBackend, container: str, existing: Sequence[Baseline]) -> None:
    """Release and destroy a baseline being sealed again (never one an environment was cloned from)."""
    tree = zfs.list_tree(container)
    snapshots = [d.name for d in tree if d.kind is DatasetKind.SNAPSHOT]
    root = container.split("/", 1)[0]
    users = [
        d.name
        for d in zfs.list_tree(root)
        if d.kind is DatasetKind.FILESYSTEM
        and d.origin in snapshots
        and not d.name.startswith(container + "/")
    ]
    if users:
        raise RefusedError(
            f"cannot seal {container} again: {', '.join(users)} was made from it",
            hint="seal under a new --release instead (a reset can choose any baseline)",
        )
    for name in snapshots:
        if FACTORY_HOLD_TAG in zfs.holds(name):
            zfs.release(name, FACTORY_HOLD_TAG)
    filesystems = [d.name for d in tree if d.kind is DatasetKind.FILESYSTEM]
    zfs.destroy([*snapshots, *filesystems])
    LOG.info("the earlier baseline %s was removed to seal it again (%d)", container, len(existing))
