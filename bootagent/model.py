"""The domain's values: boot environments, snapshots, their metadata and the boot state.

Plain frozen records and enums; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bootagent.names import MAX_NAME, split_target, validate_name

PROP_PREFIX = "org.bootagent:"


class Prop(StrEnum):
    """Every namespaced user property bootagent sets, on environments, snapshots, baselines and stored
    exports. Listings ask `zfs get` for these by name (`zfs get all` computes every native property of
    every dataset and snapshot too: four times as long as the listing itself); a property not named here is
    never read back."""

    DESCRIPTION = PROP_PREFIX + "description"
    CREATED_BY = PROP_PREFIX + "created-by"
    KERNEL = PROP_PREFIX + "kernel"
    LAST_GOOD = PROP_PREFIX + "last-good"  # epoch seconds of the last boot marked good
    LAST_EXPORT = PROP_PREFIX + "last-export"  # epoch seconds of the last complete export (bootagent export)
    KEEP = PROP_PREFIX + "keep"  # "on": never destroyed or pruned
    CUSTOMER = PROP_PREFIX + "customer"  # "on": a customer dataset
    ROLLED_BACK_FROM = PROP_PREFIX + "rolled-back-from"  # the environment a rollback left
    # "EPOCH: why": unattended recovery gave up on it; never chosen automatically until activated again
    FAILED = PROP_PREFIX + "failed"
    # the same token on the two halves of one checkpoint of a boot-environment pair (bootagent.pairs)
    PAIR = PROP_PREFIX + "pair"
    # a factory baseline (bootagent.reset.baseline)
    RELEASE = PROP_PREFIX + "release"
    SEALED = PROP_PREFIX + "sealed"  # epoch seconds
    CONFIG_DATASETS = PROP_PREFIX + "config-datasets"  # the config datasets sealed with it, space separated
    SEALED_FROM = PROP_PREFIX + "sealed-from"
    # an export on a storage host (bootagent.transfer)
    EXPORTED = PROP_PREFIX + "exported"  # epoch seconds, on a stored snapshot: when it was exported
    MANIFEST = PROP_PREFIX + "manifest"  # the manifest (compact JSON), on a stored snapshot
    MACHINE = PROP_PREFIX + "machine"  # on a stored environment: the machine it came from


FACTORY_HOLD_TAG = "org.bootagent.factory"


class CreatedBy(StrEnum):
    MANUAL = "manual"
    PACKAGE_MANAGER = "package-manager"
    AUTOMATIC = "automatic"
    AGENT = "agent"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str | None) -> CreatedBy:
        try:
            return cls(value) if value else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN


class Actor(StrEnum):
    """Who asked for a change (recorded in the journal)."""

    CLI = "cli"
    AGENT = "agent"  # a person at the early-boot agent
    AUTOMATIC = "automatic"  # unattended recovery, package-manager hooks, timers


class DatasetKind(StrEnum):
    FILESYSTEM = "filesystem"
    SNAPSHOT = "snapshot"
    VOLUME = "volume"
    BOOKMARK = "bookmark"


class PoolHealth(StrEnum):
    ONLINE = "ONLINE"
    DEGRADED = "DEGRADED"
    FAULTED = "FAULTED"
    OFFLINE = "OFFLINE"
    UNAVAIL = "UNAVAIL"
    REMOVED = "REMOVED"
    SUSPENDED = "SUSPENDED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: str) -> PoolHealth:
        try:
            return cls(value.upper())
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset or snapshot as the ZFS layer reports it."""

    name: str
    kind: DatasetKind
    creation: int  # epoch seconds
    createtxg: int  # orders snapshots exactly (creation has one-second resolution)
    used: int
    referenced: int
    origin: str | None = None
    mountpoint: str | None = None
    canmount: str | None = None
    mounted: bool = False
    user_props: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)

    @property
    def dataset(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def short_name(self) -> str:
        """The last component: the environment name or the snapshot name."""
        if "@" in self.name:
            return self.name.split("@", 1)[1]
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PoolInfo:
    name: str
    health: PoolHealth
    size: int
    free: int
    readonly: bool
    bootfs: str | None

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.size if self.size else 0.0


@dataclass(frozen=True)
class Snapshot:
    environment: str  # the environment (short name) the snapshot belongs to
    dataset: str
    name: str  # the part after '@'
    created: int
    createtxg: int
    used: int
    referenced: int
    description: str
    created_by: CreatedBy
    keep: bool
    clones: tuple[str, ...] = ()  # datasets cloned from this snapshot
    holds: frozenset[str] = frozenset()
    mounted: bool = False  # mounted somewhere (bootagent mount): ZFS refuses to destroy it
    pair_mark: str | None = None  # Prop.PAIR
    boot_name: str | None = None  # the /boot half's snapshot, in a two-pool layout (bootagent.pairs)
    missing_half: str | None = None  # why the pair is not whole: never booted or cloned

    @property
    def full_name(self) -> str:
        return f"{self.dataset}@{self.name}"

    @property
    def label(self) -> str:
        return f"{self.environment}@{self.name}"


@dataclass(frozen=True)
class BootEnvironment:
    name: str
    dataset: str
    created: int
    used: int
    referenced: int
    origin: str | None  # the snapshot this environment was cloned from
    mountpoint: str | None
    mounted: bool
    kernel: str | None
    description: str
    created_by: CreatedBy
    keep: bool
    last_good: int | None
    rolled_back_from: str | None
    snapshots: tuple[Snapshot, ...] = ()  # oldest first
    failed: str | None = None  # Prop.FAILED: "EPOCH: why" unattended recovery gave up on it
    boot_dataset: str | None = None  # the /boot half, in a two-pool layout (bootagent.pairs)
    missing_half: str | None = None  # why the pair is not whole: never booted, activated or cloned
    last_export: int | None = None  # Prop.LAST_EXPORT: epoch seconds of its last complete export


def last_known_good(environments: Iterable[BootEnvironment]) -> str | None:
    """The environment most recently marked good (its last boot passed the health checks)."""
    good = [e for e in environments if e.last_good is not None]
    return max(good, key=lambda e: e.last_good or 0).name if good else None


@dataclass(frozen=True)
class BootState:
    active: str | None  # the persistent default (pool bootfs), environment name
    next_once: str | None  # the next boot only (a trial), environment name
    running: str | None  # the environment mounted at / now, if any
    last_known_good: str | None


class Flag(StrEnum):
    """What an environment is, for listing and for the safety rules."""

    ACTIVE = "active"
    NEXT_BOOT = "next-boot"
    RUNNING = "running"
    LAST_KNOWN_GOOD = "last-known-good"
    KEEP = "keep"


# The name rule lives in bootagent.names (one place for Python, GRUB, the initramfs and the test bed).
__all__ = ["MAX_NAME", "split_target", "validate_name"]
