"""The narrow interface between the domain and ZFS.

Everything the domain needs from ZFS is here; the real implementation (`backend.ZfsSystem`) composes pyzfs
(`libzfs_core`) for changes, channel programs for listing and atomic multi-step changes on a writable pool,
and the `zfs`/`zpool` commands for what libzfs_core cannot do (import/export, mounting, native properties,
listing a read-only pool). Tests use `tests/fakes.FakeZfs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bootagent.model import DatasetInfo, PoolInfo


class DiffChange(StrEnum):
    ADDED = "+"
    REMOVED = "-"
    MODIFIED = "M"
    RENAMED = "R"


@dataclass(frozen=True)
class DiffEntry:
    change: DiffChange
    path: str  # relative to the root of the compared file systems, starting with '/'
    new_path: str | None = None  # for RENAMED


class ZfsBackend(Protocol):
    # --- reading -------------------------------------------------------------------------------------
    def pool_info(self, pool: str) -> PoolInfo:
        """Health, size, free space, read-only flag and bootfs of an imported pool (NotFoundError if not)."""
        ...

    def imported_pools(self) -> list[str]:
        """The names of the imported pools."""
        ...

    def pool_guid(self, pool: str) -> int:
        """The pool's guid (GRUB names the pool's file system by it, as 16 hex digits)."""
        ...

    def list_tree(self, root: str) -> list[DatasetInfo]:
        """`root` and every filesystem and snapshot below it (snapshots included), in no particular order.

        Each record carries the native properties of DatasetInfo and all `org.bootagent:*` user properties.
        Raises NotFoundError when `root` does not exist.
        """
        ...

    def exists(self, name: str) -> bool: ...

    def holds(self, snapshot: str) -> frozenset[str]:
        """The hold tags on a snapshot."""
        ...

    def mounts(self) -> Mapping[str, str]:
        """Mounted ZFS file systems: mount point -> dataset (or snapshot) name."""
        ...

    # --- changing ------------------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        """Create the snapshots atomically (all or none), with user properties."""
        ...

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        """Clone a snapshot into a new file system carrying the given user properties."""
        ...

    def set_native(self, name: str, props: Mapping[str, str]) -> None:
        """Set native properties (canmount, mountpoint, ...)."""
        ...

    def set_user(self, name: str, props: Mapping[str, str]) -> None:
        """Set user properties, all in one transaction group."""
        ...

    def inherit_user(self, name: str, prop: str) -> None:
        """Clear a user property (inherit it)."""
        ...

    def destroy(self, names: Sequence[str]) -> None:
        """Destroy file systems and snapshots, atomically within each pool (a channel program runs in one
        pool: names of several pools are destroyed pool by pool): snapshots before their file system."""
        ...

    def rollback_destroying_newer(self, snapshot: str) -> list[str]:
        """Atomically destroy every snapshot newer than `snapshot` and roll its file system back to it.

        Returns the destroyed snapshot names. Refuses (ZfsError) when a newer snapshot is held or cloned.
        """
        ...

    def promote(self, name: str) -> None: ...

    def rename(self, old: str, new: str) -> None: ...

    def hold(self, snapshot: str, tag: str) -> None: ...

    def release(self, snapshot: str, tag: str) -> None: ...

    def mount(self, name: str, path: str) -> None:
        """Mount a file system or snapshot read-only at `path` (which must exist)."""
        ...

    def unmount(self, path: str) -> None: ...

    def set_bootfs(self, pool: str, dataset: str) -> None: ...

    def diff(self, older: str, newer: str) -> list[DiffEntry]:
        """`zfs diff` between a snapshot and a later snapshot or the file system itself."""
        ...

    # --- for the factory reset -----------------------------------------------------------------------
    def properties(self, name: str) -> Mapping[str, str]:
        """The properties set on `name` itself (source local or received), native and user, plus `guid`,
        `type`, `encryption`, `keyformat`, `keylocation` and `encryptionroot` whatever their source."""
        ...

    def create(self, name: str, props: Mapping[str, str]) -> None:
        """A new empty file system with these properties (an encrypted one needs keylocation=file://...)."""
        ...

    def copy(self, snapshot: str, target: str, props: Mapping[str, str]) -> None:
        """A full copy of `snapshot` as a new file system (send | receive, not mounted) with these
        properties; `target` is FS@SNAP, the new file system and the name of its one snapshot."""
        ...

    def wipe_free_space(self, pool: str) -> None:
        """Overwrite the pool's free space (zpool initialize), then discard it (zpool trim); waits."""
        ...
