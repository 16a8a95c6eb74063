"""Boot-environment pairs: the layout of the OpenZFS "Root on ZFS" HOWTO, where GRUB reads a pool of its
own. Environment NAME is then two datasets, `<pool>/<root>/NAME` (mounted at /) and
`<boot pool>/<boot_root>/NAME` (mounted at /boot), and one state of it is two snapshots of the same name.

The root half carries everything bootagent records (description, keep, last-good, ...); the boot half is
snapshotted, cloned, rolled back and destroyed with it. ZFS cannot snapshot two pools in one transaction,
so a checkpoint takes the root half, then the boot half at once after it, both with the same pair mark
(`org.bootagent:pair`); a checkpoint cut between the two is undone (bootagent.resume).

A pair is consistent when both halves exist and, for a snapshot, when the halves carry the same pair mark
(or, for snapshots made without bootagent, were taken within PAIR_SKEW seconds of each other). Anything
else is a missing half: listed with the reason, never booted, activated or cloned.

Pure functions over listings, and the boot pool's detection over the ZFS interface; no other I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bootagent.config import BOOT_POOL_AUTO, BOOT_POOL_NONE, Config
from bootagent.errors import BootagentError
from bootagent.model import BootEnvironment, DatasetInfo, DatasetKind, Prop, Snapshot
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)

PAIR_SKEW = 300  # seconds: two snapshots without a pair mark taken further apart are not one state
BOOT_MOUNTPOINT = "/boot"


@dataclass(frozen=True)
class PairLayout:
    """Where the halves live: `root` is "<pool>/<root>"; `boot` is "<boot pool>/<boot_root>", or None when
    /boot is inside each environment (one pool)."""

    root: str
    boot: str | None = None

    @property
    def paired(self) -> bool:
        return self.boot is not None

    @property
    def boot_pool(self) -> str | None:
        return self.boot.split("/", 1)[0] if self.boot else None

    def boot_half(self, name: str) -> str | None:
        """The boot half of a root-half dataset or snapshot: <root>/X[@S] -> <boot>/X[@S]; None without a
        boot pool or for a name outside the root container."""
        if self.boot is None or not name.startswith(self.root + "/"):
            return None
        return self.boot + name[len(self.root) :]


@dataclass(frozen=True)
class Paired:
    environments: tuple[BootEnvironment, ...]
    orphans: tuple[str, ...]  # boot halves (datasets or snapshots) whose root half does not exist


def detect_boot_pool(zfs: ZfsBackend, config: Config, pool: str, warnings: list[str]) -> str | None:
    """The boot pool: the config's; else (auto) the pool of the running /boot when that is a boot half; else
    the one other imported pool with <pool>/<boot_root>."""
    if config.boot_pool == BOOT_POOL_NONE:
        return None
    container = config.layout.boot_root
    if config.boot_pool != BOOT_POOL_AUTO:
        if config.boot_pool == pool:
            warnings.append(
                f"boot_pool names the root pool {pool}; /boot is taken to be inside each environment"
            )
            return None
        return config.boot_pool
    mounted = zfs.mounts().get(BOOT_MOUNTPOINT, "")  # the running system's own /boot says it best
    boot_pool, _, rest = mounted.partition("/")
    if boot_pool and boot_pool != pool and rest.rpartition("/")[0] == container:
        return boot_pool
    try:
        pools = zfs.imported_pools()
    except BootagentError as exc:
        warnings.append(f"cannot list the imported pools to find a boot pool: {exc.message}")
        return None
    candidates = [p for p in pools if p != pool and zfs.exists(f"{p}/{container}")]
    if len(candidates) > 1:
        warnings.append(
            f"several pools have {container} ({', '.join(candidates)}): set 'boot_pool:' in "
            "/etc/bootagent/bootagent.yaml; /boot is taken to be inside each environment"
        )
        return None
    return candidates[0] if candidates else None


def layout_for(zfs: ZfsBackend, config: Config, pool: str, warnings: list[str]) -> PairLayout:
    boot_pool = detect_boot_pool(zfs, config, pool, warnings)
    root = config.root_container(pool)
    return PairLayout(root, f"{boot_pool}/{config.layout.boot_root}" if boot_pool else None)


def pair_up(
    layout: PairLayout, environments: Sequence[BootEnvironment], boot_tree: Sequence[DatasetInfo]
) -> Paired:
    """The environments with their boot halves attached and every missing or mismatched half explained."""
    if layout.boot is None:
        return Paired(tuple(environments), ())
    datasets = {
        d.name: d
        for d in boot_tree
        if d.kind is DatasetKind.FILESYSTEM and d.name.rpartition("/")[0] == layout.boot
    }
    snapshots = {d.name: d for d in boot_tree if d.kind is DatasetKind.SNAPSHOT and d.dataset in datasets}
    used: set[str] = set()
    out: list[BootEnvironment] = []
    for env in environments:
        half = layout.boot_half(env.dataset)
        assert half is not None  # an environment is a child of the root container
        if half not in datasets:
            out.append(replace(env, missing_half=f"its /boot half {half} does not exist"))
            continue
        used.add(half)
        snaps = []
        for snap in env.snapshots:
            boot_snap = snapshots.get(f"{half}@{snap.name}")
            if boot_snap is None:
                snaps.append(replace(snap, missing_half=f"its /boot half {half}@{snap.name} does not exist"))
                continue
            used.add(boot_snap.name)
            snaps.append(replace(snap, boot_name=boot_snap.name, missing_half=_mismatch(snap, boot_snap)))
        out.append(replace(env, boot_dataset=half, snapshots=tuple(snaps)))
    orphans = sorted(name for name in (*datasets, *snapshots) if name not in used)
    return Paired(tuple(out), tuple(orphans))


def _mismatch(snap: Snapshot, boot: DatasetInfo) -> str | None:
    mark, boot_mark = snap.pair_mark, boot.user_props.get(Prop.PAIR.value) or None
    if mark and boot_mark:
        if mark == boot_mark:
            return None
        return f"its /boot half {boot.name} is from another checkpoint (the pair marks differ)"
    apart = abs(snap.created - boot.creation)
    if apart > PAIR_SKEW:
        return f"its /boot half {boot.name} was taken {_duration(apart)} apart from it"
    return None


def _duration(seconds: int) -> str:
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def with_boot_halves(names: Iterable[str], environments: Sequence[BootEnvironment]) -> list[str]:
    """Dataset and snapshot names with the boot half of each one that has one, each boot half right after
    its root half."""
    halves: dict[str, str] = {}
    for env in environments:
        if env.boot_dataset:
            halves[env.dataset] = env.boot_dataset
        for snap in env.snapshots:
            if snap.boot_name:
                halves[snap.full_name] = snap.boot_name
    out: list[str] = []
    for name in names:
        out.append(name)
        if name in halves:
            out.append(halves[name])
    return out


def boot_refusal(target: BootEnvironment | Snapshot) -> str | None:
    """Why a pair cannot be booted, activated or cloned, or None."""
    if target.missing_half is None:
        return None
    what = target.name if isinstance(target, BootEnvironment) else target.label
    return f"{what} is half a boot environment: {target.missing_half}"
