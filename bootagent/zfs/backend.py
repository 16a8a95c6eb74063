"""The real ZfsBackend: libzfs_core and channel programs where they work, the command line elsewhere.

Routing:
- reading never loads libzfs_core (importing pyzfs parses its C declarations with cffi: about two seconds
  in a guest, on every boot's boot-start, health and bless): listing is `zfs list` and `zfs get -s local`,
  two commands for the whole tree (faster than the channel-program listing even with pyzfs loaded, whose
  nvlist conversion is Python); exists and holds use libzfs_core when a change in this run has loaded it
  already, the CLI otherwise;
- set_user and inherit_user, the whole change of a boot's bless: the same rule (one `zfs set` of several
  user properties is one ioctl, one transaction group, as atomic as the channel program);
- snapshot, clone, hold, release, promote, rename: libzfs_core;
- destroy, rollback_destroying_newer: channel programs (atomic, checked first); a rollback of a MOUNTED
  file system goes to `zfs rollback -r` (zfs.sync.rollback refuses mounted ones);
- set_user, inherit_user once libzfs_core is loaded: a channel program;
- native properties, mount/unmount, bootfs, diff, pool_info, import/export: the CLI;
- all changes: the CLI when libzfs_core cannot be loaded (no /dev/zfs, no pyzfs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from bootagent.errors import BootagentError, RefusedError
from bootagent.model import DatasetInfo, PoolInfo
from bootagent.runner import Runner, run
from bootagent.zfs.channel import ChannelPrograms, pool_of
from bootagent.zfs.cli import ZfsCli
from bootagent.zfs.interface import DiffEntry, ZfsBackend
from bootagent.zfs.lzc import Lzc

LOG = logging.getLogger(__name__)


class ZfsSystem:
    """ZfsBackend over the real system."""

    def __init__(
        self, runner: Runner = run, lzc: Lzc | None = None, mounts_path: str = "/proc/self/mounts"
    ) -> None:
        self.cli = ZfsCli(runner, mounts_path=mounts_path)
        self.lzc = lzc if lzc is not None else Lzc()
        self.programs = ChannelPrograms(self.lzc)
        self._lzc_loaded = False

    def _lzc_usable(self) -> bool:
        """For changes: loads libzfs_core on the first call."""
        usable = self.lzc.available()
        self._lzc_loaded = usable
        return usable

    def _lzc_loaded_already(self) -> bool:
        """For reads and user properties: libzfs_core only once a change has loaded it (never paid for)."""
        return self._lzc_loaded

    def _mounted_datasets(self) -> dict[str, str]:
        """dataset -> mount point (the first one when mounted twice)."""
        found: dict[str, str] = {}
        for path, dataset in self.cli.mounts().items():
            found.setdefault(dataset, path)
        return found

    # --- reading ---------------------------------------------------------------------------------------
    def pool_info(self, pool: str) -> PoolInfo:
        return self.cli.pool_info(pool)

    def imported_pools(self) -> list[str]:
        return self.cli.imported_pools()

    def pool_guid(self, pool: str) -> int:
        return self.cli.pool_guid(pool)

    def list_tree(self, root: str) -> list[DatasetInfo]:
        return self.cli.list_tree(root)

    def exists(self, name: str) -> bool:
        if self._lzc_loaded_already():
            return self.lzc.exists(name)
        return self.cli.exists(name)

    def holds(self, snapshot: str) -> frozenset[str]:
        if self._lzc_loaded_already():
            return self.lzc.get_holds(snapshot)
        return self.cli.holds(snapshot)

    def mounts(self) -> Mapping[str, str]:
        return self.cli.mounts()

    def diff(self, older: str, newer: str) -> list[DiffEntry]:
        return self.cli.diff(older, newer)

    # --- changing --------------------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        if not names:
            return
        if self._lzc_usable():
            self.lzc.snapshot(names, user_props)
        else:
            self.cli.snapshot(names, user_props)

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        if self._lzc_usable():
            self.lzc.clone(name, origin, user_props)
        else:
            self.cli.clone(name, origin, user_props)

    def set_native(self, name: str, props: Mapping[str, str]) -> None:
        self.cli.set_native(name, props)

    def set_user(self, name: str, props: Mapping[str, str]) -> None:
        if not props:
            return
        if self._lzc_loaded_already():
            self.programs.set_user(name, props)
        else:
            self.cli.set_user(name, props)

    def inherit_user(self, name: str, prop: str) -> None:
        if self._lzc_loaded_already():
            self.programs.set_user(name, {}, clear=[prop])
        else:
            self.cli.inherit_user(name, prop)

    def destroy(self, names: Sequence[str]) -> None:
        if not names:
            return
        mounted = self._mounted_datasets()
        busy = [f"{n} (at {mounted[n]})" for n in names if "@" not in n and n in mounted]
        if busy:
            raise RefusedError(
                f"cannot destroy mounted file systems: {', '.join(busy)}",
                hint="unmount them first; nothing was destroyed",
            )
        if self._lzc_usable():
            # a channel program runs in one pool: a pair's halves (bootagent.pairs) are two programs,
            # each all or nothing; a cut between them is finished from the journal (bootagent.resume)
            by_pool: dict[str, list[str]] = {}
            for name in names:
                by_pool.setdefault(pool_of(name), []).append(name)
            done: list[str] = []
            for group in by_pool.values():
                try:
                    self.programs.destroy(group)
                except BootagentError as exc:
                    if not done:
                        raise
                    partial = BootagentError(
                        f"{exc.message}; already destroyed in another pool: {', '.join(done)}",
                        hint="the rest is left as it is; 'bootagent list' shows what is left of each pair",
                    )
                    partial.exit_code = exc.exit_code
                    raise partial from exc
                done.extend(group)
        else:
            LOG.info("libzfs_core unavailable: destroying with the zfs command, one dataset at a time")
            self.cli.destroy(names)

    def rollback_destroying_newer(self, snapshot: str) -> list[str]:
        filesystem = snapshot.split("@", 1)[0]
        if not self._lzc_usable():
            return self.cli.rollback_destroying_newer(snapshot)
        if filesystem in self._mounted_datasets():
            LOG.info("%s is mounted: rolling back with `zfs rollback -r`", filesystem)
            return self.cli.rollback_destroying_newer(snapshot)
        return self.programs.rollback_newer(snapshot)

    def promote(self, name: str) -> None:
        if self._lzc_usable():
            self.lzc.promote(name)
        else:
            self.cli.promote(name)

    def rename(self, old: str, new: str) -> None:
        if self._lzc_usable():
            self.lzc.rename(old, new)
        else:
            self.cli.rename(old, new)

    def hold(self, snapshot: str, tag: str) -> None:
        if self._lzc_usable():
            self.lzc.hold(snapshot, tag)
        else:
            self.cli.hold(snapshot, tag)

    def release(self, snapshot: str, tag: str) -> None:
        if self._lzc_usable():
            self.lzc.release(snapshot, tag)
        else:
            self.cli.release(snapshot, tag)

    def mount(self, name: str, path: str) -> None:
        self.cli.mount(name, path)

    def unmount(self, path: str) -> None:
        self.cli.unmount(path)

    def set_bootfs(self, pool: str, dataset: str) -> None:
        self.cli.set_bootfs(pool, dataset)

    def properties(self, name: str) -> Mapping[str, str]:
        return self.cli.properties(name)

    def create(self, name: str, props: Mapping[str, str]) -> None:
        self.cli.create(name, props)

    def copy(self, snapshot: str, target: str, props: Mapping[str, str]) -> None:
        self.cli.copy(snapshot, target, props)

    def wipe_free_space(self, pool: str) -> None:
        self.cli.wipe_free_space(pool)

    # --- pools (not part of ZfsBackend) ----------------------------------------------------------------
    def import_pool(self, pool: str, *, readonly: bool, altroot: str | None = None) -> None:
        self.cli.import_pool(pool, readonly=readonly, altroot=altroot)

    def export_pool(self, pool: str) -> None:
        self.cli.export_pool(pool)


_check: type[ZfsBackend] = ZfsSystem
