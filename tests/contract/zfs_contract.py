"""The ZFS contract: what the domain relies on from a ZfsBackend, as checks that run against any of them.

A check is `check_xxx(zfs, scratch)`. `scratch` is an existing, empty file system the caller provides (e.g.
"rpool/contract-1a2b"); each check makes its own datasets below it, every name starting with a fresh
prefix, and destroys them again at the end. Checks use only the ZfsBackend interface and assert with plain
`assert`, so the same file runs

- in the quick tier against tests.fakes.FakeZfs (tests/unit/zfs/test_contract.py), and
- in a VM guest against the real pool, without pytest, with only the standard library and the installed
  bootagent:  `python3 zfs_contract.py SCRATCH [CHECK ...]` prints one JSON object
  {check: "ok" | "FAIL: ..."} and exits 0 only when every check passed.

When the fake and real ZFS disagree, the fake is what gets fixed. The error classes asserted here are the
ones the domain (environments.py, inventory.py, prune.py) and the CLI's exit codes depend on.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import tempfile
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from bootagent.errors import BootagentError, InvalidNameError, NotFoundError, RefusedError
from bootagent.model import FACTORY_HOLD_TAG, DatasetInfo, DatasetKind, PoolHealth, Prop
from bootagent.names import name_problem, zfs_allows
from bootagent.zfs.interface import ZfsBackend

Check = Callable[[ZfsBackend, str], None]

DESCRIPTION = Prop.DESCRIPTION.value
CREATED_BY = Prop.CREATED_BY.value
KERNEL = Prop.KERNEL.value
KEEP = Prop.KEEP.value
LAST_GOOD = Prop.LAST_GOOD.value
CUSTOMER = Prop.CUSTOMER.value
ROLLED_BACK_FROM = Prop.ROLLED_BACK_FROM.value
FOREIGN_PROP = "com.example.contract:other"  # a user property outside bootagent's namespace
TEXT = "before apt upgrade \u2013 caf\u00e9, 50% done"  # free text as descriptions carry it
HOLD_TAG = "org.bootagent.contract"
EPOCH_2001 = 1_000_000_000


# --- helpers -----------------------------------------------------------------------------------------
def _unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _listing(zfs: ZfsBackend, root: str) -> dict[str, DatasetInfo]:
    records = zfs.list_tree(root)
    listing = {r.name: r for r in records}
    assert len(listing) == len(records), f"list_tree({root!r}) reports a name twice: {records}"
    return listing


def _record(zfs: ZfsBackend, name: str) -> DatasetInfo:
    """The record of `name` from the listing of its file system."""
    dataset = name.split("@", 1)[0]
    listing = _listing(zfs, dataset)
    assert name in listing, f"list_tree({dataset!r}) does not report {name}: {sorted(listing)}"
    return listing[name]


def _inherited(parent_mountpoint: str | None, leaf: str) -> str:
    """The mountpoint a child file system inherits: below a path, or the same `none`/`legacy`."""
    assert parent_mountpoint, f"a file system reports no mountpoint ({parent_mountpoint!r})"
    if not parent_mountpoint.startswith("/"):
        return parent_mountpoint
    return parent_mountpoint.rstrip("/") + "/" + leaf


def _raises(expected: type[BaseException], action: Callable[[], object], what: str) -> BaseException:
    """Run `action`, which must raise `expected` (or a subclass); return the exception."""
    try:
        action()
    except expected as exc:
        return exc
    except Exception as exc:
        raise AssertionError(
            f"{what}: expected {expected.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"{what}: expected {expected.__name__}, but nothing was raised")


def _assert_exist(zfs: ZfsBackend, names: Iterable[str], what: str) -> None:
    missing = [n for n in names if not zfs.exists(n)]
    assert not missing, f"{what}: {missing} no longer exist"


def _assert_gone(zfs: ZfsBackend, names: Iterable[str], what: str) -> None:
    present = [n for n in names if zfs.exists(n)]
    assert not present, f"{what}: {present} still exist"


class Workspace:
    """The datasets one check makes below `scratch`: every name starts with `prefix`.

    New file systems are clones of one snapshot of `scratch` (the interface has no `create`), so they can
    be put anywhere below `scratch`, also below each other.
    """

    def __init__(self, zfs: ZfsBackend, scratch: str, label: str) -> None:
        self.zfs = zfs
        self.scratch = scratch
        self.prefix = _unique(label)
        self._base: str | None = None
        self._dirs: list[str] = []

    @property
    def base(self) -> str:
        """The snapshot of `scratch` new file systems are cloned from (made on first use)."""
        if self._base is None:
            name = f"{self.scratch}@{self.prefix}"
            self.zfs.snapshot([name], {})
            self._base = name
        return self._base

    def name(self, leaf: str, under: str | None = None) -> str:
        """A name for a new file system: `under/leaf`, or `scratch/prefix-leaf`."""
        return f"{under}/{leaf}" if under else f"{self.scratch}/{self.prefix}-{leaf}"

    def filesystem(
        self, leaf: str, *, under: str | None = None, user_props: Mapping[str, str] | None = None
    ) -> str:
        name = self.name(leaf, under)
        self.zfs.clone(name, self.base, dict(user_props or {}))
        return name

    def snapshot(self, filesystem: str, snap: str, user_props: Mapping[str, str] | None = None) -> str:
        name = f"{filesystem}@{snap}"
        self.zfs.snapshot([name], dict(user_props or {}))
        return name

    def directory(self) -> str:
        """An empty directory to mount on (removed at the end)."""
        path = tempfile.mkdtemp(prefix=f"bootagent-{self.prefix}-")
        self._dirs.append(path)
        return path

    def ours(self, name: str) -> bool:
        return name.startswith((f"{self.scratch}/{self.prefix}", f"{self.scratch}@{self.prefix}"))

    def teardown(self) -> list[str]:
        """Unmount, release holds and destroy everything of ours, one dataset at a time in dependency
        order (clones before their origin, snapshots and children before their file system). Returns the
        problems met on the way (empty when everything is gone)."""
        problems: list[str] = []

        def attempt(what: str, action: Callable[..., object], *args: object) -> object:
            try:
                return action(*args)
            except Exception as exc:
                problems.append(f"{what}: {type(exc).__name__}: {exc}")
                return None

        mounts = attempt("reading the mounts", self.zfs.mounts)
        if isinstance(mounts, Mapping):
            ours = sorted((p for p, ds in mounts.items() if self.ours(ds)), key=len, reverse=True)
            for path in ours:
                attempt(f"unmounting {path}", self.zfs.unmount, path)

        remaining = {r.name: r for r in self._listed(attempt)}
        for record in remaining.values():
            if record.kind is DatasetKind.SNAPSHOT:
                tags = attempt(f"reading the holds of {record.name}", self.zfs.holds, record.name)
                for tag in sorted(tags) if isinstance(tags, frozenset) else []:
                    attempt(f"releasing {tag} on {record.name}", self.zfs.release, record.name, tag)

        failed: set[str] = set()
        while True:
            free = sorted(
                name
                for name, record in remaining.items()
                if name not in failed and not _depended_on(record, remaining.values())
            )
            if not free:
                break
            for name in free:
                before = len(problems)
                attempt(f"destroying {name}", self.zfs.destroy, [name])
                if len(problems) == before:
                    del remaining[name]
                else:
                    failed.add(name)
        if remaining and not problems:
            problems.append(f"could not destroy {sorted(remaining)}")
        leftover = sorted(r.name for r in self._listed(attempt))
        if leftover:
            problems.append(f"left behind: {leftover}")
        for path in reversed(self._dirs):
            attempt(f"removing {path}", os.rmdir, path)
        return problems

    def _listed(self, attempt: Callable[..., object]) -> list[DatasetInfo]:
        records = attempt(f"listing {self.scratch}", self.zfs.list_tree, self.scratch)
        return [r for r in records if self.ours(r.name)] if isinstance(records, list) else []


def _depended_on(record: DatasetInfo, others: Iterable[DatasetInfo]) -> bool:
    """Whether another dataset must go before `record` can be destroyed."""
    if record.kind is DatasetKind.SNAPSHOT:
        return any(other.origin == record.name for other in others)
    below = (record.name + "/", record.name + "@")
    return any(other.name.startswith(below) for other in others)


@contextlib.contextmanager
def workspace(zfs: ZfsBackend, scratch: str, label: str) -> Iterator[Workspace]:
    """A Workspace torn down at the end; a failed clean-up fails a check that passed otherwise."""
    ws = Workspace(zfs, scratch, label)
    try:
        yield ws
    except BaseException:
        ws.teardown()
        raise
    problems = ws.teardown()
    assert not problems, "cleaning up failed: " + "; ".join(problems)


# --- reading -----------------------------------------------------------------------------------------
def check_list_tree_reports_the_tree(zfs: ZfsBackend, scratch: str) -> None:
    """The root, the file systems below it and all their snapshots, with the native properties the
    inventory is assembled from; nothing beside the tree (a sibling sharing the root's name as a prefix)."""
    with workspace(zfs, scratch, "tree") as ws:
        env = ws.filesystem("env")
        first = ws.snapshot(env, "first")
        child = ws.filesystem("child", under=env)
        second = ws.snapshot(child, "second")
        sibling = ws.filesystem("env-sibling")
        ws.snapshot(sibling, "other")

        listing = _listing(zfs, env)
        assert set(listing) == {env, first, child, second}, f"list_tree({env!r}) gave {sorted(listing)}"
        order = [listing[n] for n in (env, first, child, second)]
        for record in order:
            assert isinstance(record.creation, int), record
            assert isinstance(record.createtxg, int), record
            assert (
                record.creation > EPOCH_2001
            ), f"{record.name}: creation {record.creation} is not epoch seconds"
            assert record.used >= 0, record
            assert record.referenced >= 0, record
            assert not record.mounted, f"{record.name} is reported mounted"
            assert dict(record.user_props) == {}, f"{record.name} reports {dict(record.user_props)}"
        txgs = [r.createtxg for r in order]
        assert txgs == sorted(txgs), f"createtxg not in creation order: {txgs}"
        assert len(set(txgs)) == 4, f"separate changes share a createtxg: {txgs}"
        times = [r.creation for r in order]
        assert times == sorted(times), f"creation not in creation order: {times}"

        parents = {env: _listing(zfs, scratch)[scratch].mountpoint, child: listing[env].mountpoint}
        for name, parent_mountpoint in parents.items():
            record = listing[name]
            assert record.kind is DatasetKind.FILESYSTEM, record
            assert record.origin == ws.base, f"{name}: origin {record.origin!r}, expected {ws.base!r}"
            assert record.canmount == "on", f"{name}: canmount {record.canmount!r} (the default is on)"
            expected = _inherited(parent_mountpoint, name.rsplit("/", 1)[1])
            assert (
                record.mountpoint == expected
            ), f"{name}: mountpoint {record.mountpoint!r}, not {expected!r}"
        for name in (first, second):
            record = listing[name]
            assert record.kind is DatasetKind.SNAPSHOT, record
            assert (record.origin, record.mountpoint, record.canmount) == (None, None, None), (
                f"{name}: a snapshot reports origin/mountpoint/canmount "
                f"{(record.origin, record.mountpoint, record.canmount)}"
            )
            assert (record.dataset, record.short_name) == tuple(name.split("@")), record

        # a snapshot as the root: just that snapshot
        assert set(_listing(zfs, first)) == {
            first
        }, f"list_tree({first!r}) gave {sorted(_listing(zfs, first))}"


def check_list_tree_of_missing_dataset_is_not_found(zfs: ZfsBackend, scratch: str) -> None:
    """NotFoundError (exit code NOT_FOUND) for a missing file system, snapshot or pool."""
    prefix = _unique("missing")
    for root in (
        f"{scratch}/{prefix}",
        f"{scratch}@{prefix}",
        f"{scratch}/{prefix}/deeper",
        f"{prefix}/ROOT",
    ):
        _raises(NotFoundError, functools.partial(zfs.list_tree, root), f"list_tree({root!r})")


def check_user_props_are_reported_only_where_set(zfs: ZfsBackend, scratch: str) -> None:
    """Only locally set org.bootagent:* properties: a snapshot does not report its file system's (else every
    snapshot of a keep=on environment would look kept), a child not its parent's; other namespaces never."""
    with workspace(zfs, scratch, "props") as ws:
        env_props = {DESCRIPTION: "an environment", CREATED_BY: "manual", KEEP: "on"}
        env = ws.filesystem("env", user_props=env_props)
        zfs.set_user(env, {FOREIGN_PROP: "not ours"})
        plain = ws.snapshot(env, "plain")
        own = ws.snapshot(env, "own", {DESCRIPTION: "a checkpoint"})
        child = ws.filesystem("child", under=env)

        listing = _listing(zfs, env)
        got = {name: dict(listing[name].user_props) for name in (env, plain, own, child)}
        expected = {env: env_props, plain: {}, own: {DESCRIPTION: "a checkpoint"}, child: {}}
        assert got == expected, f"user properties: {got}, expected {expected}"


def check_exists(zfs: ZfsBackend, scratch: str) -> None:
    """True for file systems and snapshots, False (no error) for missing ones, also in a missing pool."""
    assert zfs.exists(scratch), f"exists({scratch!r}) is False"
    with workspace(zfs, scratch, "exists") as ws:
        env = ws.filesystem("env")
        snap = ws.snapshot(env, "s")
        for name in (env, snap):
            assert zfs.exists(name) is True, f"exists({name!r}) is not True right after making it"
        pool_missing = _unique("nopool")
        for name in (
            ws.name("missing"),
            f"{env}@missing",
            f"{env}/missing",
            f"{scratch}@{ws.prefix}-missing",
            f"{pool_missing}/ROOT",
            f"{pool_missing}/ROOT@s",
        ):
            assert zfs.exists(name) is False, f"exists({name!r}) is not False"
        zfs.destroy([snap])
        assert not zfs.exists(snap), "exists() is True for a destroyed snapshot"


def check_pool_info(zfs: ZfsBackend, scratch: str) -> None:
    """The pool's health, size, free space, bootfs; its guid; it is imported; a missing pool is NotFound."""
    pool = scratch.split("/", 1)[0]
    info = zfs.pool_info(pool)
    assert info.name == pool, info
    assert info.health is PoolHealth.ONLINE, f"health {info.health!r} (a pool to test on should be ONLINE)"
    assert isinstance(info.size, int), info
    assert isinstance(info.free, int), info
    assert info.size > 0, info
    assert 0 < info.free <= info.size, info
    assert info.readonly is False, f"{pool} is reported read-only: {info}"
    if info.bootfs is not None:
        assert info.bootfs.startswith(pool + "/"), f"bootfs {info.bootfs!r} is not in {pool}"
        assert zfs.exists(info.bootfs), f"bootfs {info.bootfs!r} does not exist"
    pools = zfs.imported_pools()
    assert pool in pools, f"imported_pools() = {pools}"
    guid = zfs.pool_guid(pool)
    assert isinstance(guid, int), f"pool_guid({pool!r}) = {guid!r}"
    assert 0 < guid < 1 << 64, f"pool_guid({pool!r}) = {guid!r}"
    assert zfs.pool_guid(pool) == guid, "pool_guid changed between two calls"

    missing = _unique("nopool")
    assert missing not in zfs.imported_pools()
    _raises(NotFoundError, lambda: zfs.pool_info(missing), f"pool_info({missing!r})")
    _raises(NotFoundError, lambda: zfs.pool_guid(missing), f"pool_guid({missing!r})")


# --- snapshots and clones ----------------------------------------------------------------------------
def check_snapshot_batch_is_atomic_and_carries_props(zfs: ZfsBackend, scratch: str) -> None:
    """snapshot() of several names: all in one transaction group with the given user properties, or none
    (one existing name, a missing file system)."""
    with workspace(zfs, scratch, "snap") as ws:
        a = ws.filesystem("a")
        b = ws.filesystem("b")
        props = {DESCRIPTION: TEXT, CREATED_BY: "package-manager"}
        zfs.snapshot([f"{a}@s", f"{b}@s"], props)
        ra, rb = _record(zfs, f"{a}@s"), _record(zfs, f"{b}@s")
        for record in (ra, rb):
            assert record.kind is DatasetKind.SNAPSHOT, record
            assert dict(record.user_props) == props, f"{record.name}: {dict(record.user_props)}"
        assert ra.createtxg == rb.createtxg, f"one snapshot() call, two txgs: {ra.createtxg}, {rb.createtxg}"
        assert abs(ra.creation - rb.creation) <= 1, (ra.creation, rb.creation)

        # an empty value (a checkpoint without a description) is accepted and reads back as empty
        zfs.snapshot([f"{a}@empty"], {DESCRIPTION: "", CREATED_BY: "manual"})
        empty = _record(zfs, f"{a}@empty").user_props
        assert (empty.get(DESCRIPTION, ""), empty.get(CREATED_BY)) == ("", "manual"), dict(empty)

        _raises(
            RefusedError, lambda: zfs.snapshot([f"{a}@t", f"{b}@s"], props), "a batch with an existing name"
        )
        _assert_gone(zfs, [f"{a}@t"], "a refused batch made a snapshot")
        missing = ws.name("missing")
        _raises(
            NotFoundError,
            lambda: zfs.snapshot([f"{a}@u", f"{missing}@u"], {}),
            "a batch with a missing file system",
        )
        _assert_gone(zfs, [f"{a}@u", f"{missing}@u"], "a failed batch made a snapshot")


def check_snapshot_of_existing_name_is_refused(zfs: ZfsBackend, scratch: str) -> None:
    """RefusedError, and the existing snapshot keeps its properties."""
    with workspace(zfs, scratch, "exist") as ws:
        env = ws.filesystem("env")
        snap = ws.snapshot(env, "s", {DESCRIPTION: "the first"})
        _raises(
            RefusedError, lambda: zfs.snapshot([snap], {DESCRIPTION: "the second"}), f"snapshot {snap} again"
        )
        assert dict(_record(zfs, snap).user_props) == {DESCRIPTION: "the first"}


def check_clone_keeps_origin_and_props(zfs: ZfsBackend, scratch: str) -> None:
    """A clone records its origin snapshot and carries exactly the given user properties (not the origin's);
    an existing name is refused, a missing origin or parent is NotFound."""
    with workspace(zfs, scratch, "clone") as ws:
        env = ws.filesystem("env", user_props={DESCRIPTION: "the source", KERNEL: "6.1.0-30-amd64"})
        snap_props = {DESCRIPTION: "the snapshot", CREATED_BY: "manual", KEEP: "on"}
        snap = ws.snapshot(env, "s", snap_props)
        clone = ws.name("clone")
        props = {DESCRIPTION: "from env@s", CREATED_BY: "manual", ROLLED_BACK_FROM: "env"}
        zfs.clone(clone, snap, props)

        record = _record(zfs, clone)
        origin = _record(zfs, snap)
        assert record.kind is DatasetKind.FILESYSTEM, record
        assert record.origin == snap, f"origin {record.origin!r}, expected {snap!r}"
        assert dict(record.user_props) == props, f"the clone reports {dict(record.user_props)}"
        assert record.createtxg > origin.createtxg, (record.createtxg, origin.createtxg)
        assert record.canmount == "on", record
        assert dict(origin.user_props) == snap_props, f"the origin now reports {dict(origin.user_props)}"

        _raises(RefusedError, lambda: zfs.clone(clone, snap, {}), "a clone onto an existing name")
        assert dict(_record(zfs, clone).user_props) == props
        _raises(
            NotFoundError,
            lambda: zfs.clone(ws.name("c2"), f"{env}@missing", {}),
            "a clone of a missing snapshot",
        )
        orphan = f"{ws.name('missing')}/c3"
        _raises(NotFoundError, lambda: zfs.clone(orphan, snap, {}), "a clone into a missing parent")
        _assert_gone(zfs, [ws.name("c2"), orphan], "a failed clone made a dataset")


def check_names(zfs: ZfsBackend, scratch: str) -> None:
    """bootagent's names (letters, digits, - _ . :) work for file systems and snapshots; ZFS itself also
    takes a space (bootagent refuses it; such environments are listed); '+' is refused by ZFS with
    InvalidNameError (exit code USAGE), and a batch with one such name makes nothing."""
    with workspace(zfs, scratch, "names") as ws:
        safe = f"{ws.prefix}-Ab_1.2:3"
        assert name_problem(safe) is None, name_problem(safe)
        env = f"{scratch}/{safe}"
        zfs.clone(env, ws.base, {})
        snap = ws.snapshot(env, "Ab_1.2:3-x")
        listing = _listing(zfs, env)
        assert set(listing) == {env, snap}, sorted(listing)
        assert (listing[env].short_name, listing[snap].short_name) == (safe, "Ab_1.2:3-x"), listing

        spaced = f"{ws.prefix}-with space"
        assert name_problem(spaced) is not None, "bootagent's rule accepts a space"
        assert zfs_allows(spaced), "bootagent.names.zfs_allows refuses a space"
        spaced_env = f"{scratch}/{spaced}"
        zfs.clone(spaced_env, ws.base, {DESCRIPTION: "made by hand"})
        spaced_snap = ws.snapshot(spaced_env, "pre upgrade")
        listing = _listing(zfs, spaced_env)
        assert set(listing) == {spaced_env, spaced_snap}, sorted(listing)
        assert listing[spaced_snap].short_name == "pre upgrade"

        plus = f"{ws.prefix}-a+b"
        assert not zfs_allows(plus)
        _raises(
            InvalidNameError, lambda: zfs.clone(f"{scratch}/{plus}", ws.base, {}), "a clone named with '+'"
        )
        _raises(InvalidNameError, lambda: zfs.snapshot([f"{env}@a+b"], {}), "a snapshot named with '+'")
        _raises(
            InvalidNameError,
            lambda: zfs.snapshot([f"{spaced_env}@fine", f"{env}@a+b"], {}),
            "a batch with one snapshot named with '+'",
        )
        _assert_gone(zfs, [f"{scratch}/{plus}", f"{env}@a+b", f"{spaced_env}@fine"], "a refused name")


# --- properties --------------------------------------------------------------------------------------
def check_set_native_canmount_and_mountpoint(zfs: ZfsBackend, scratch: str) -> None:
    """canmount and mountpoint as `create` sets them (one call, which mounts nothing); children inherit the
    mountpoint but not canmount; a missing dataset is NotFound."""
    with workspace(zfs, scratch, "native") as ws:
        env = ws.filesystem("env")
        mountpoint = f"/run/bootagent-contract/{ws.prefix}"
        zfs.set_native(env, {"canmount": "noauto", "mountpoint": mountpoint})
        record = _record(zfs, env)
        assert (record.canmount, record.mountpoint) == ("noauto", mountpoint), record
        assert not record.mounted, "set_native mounted the file system"
        assert env not in zfs.mounts().values(), "set_native mounted the file system"

        child = ws.filesystem("child", under=env)
        record = _record(zfs, child)
        assert (record.canmount, record.mountpoint) == ("on", mountpoint + "/child"), record
        zfs.set_native(child, {"mountpoint": "none"})
        zfs.set_native(env, {"canmount": "off"})
        listing = _listing(zfs, env)
        assert (listing[env].canmount, listing[env].mountpoint) == ("off", mountpoint), listing[env]
        assert (listing[child].canmount, listing[child].mountpoint) == ("on", "none"), listing[child]

        missing = ws.name("missing")
        _raises(
            NotFoundError,
            lambda: zfs.set_native(missing, {"canmount": "noauto"}),
            "set_native on a missing one",
        )


def check_set_user_and_inherit_user(zfs: ZfsBackend, scratch: str) -> None:
    """set_user sets several properties (replacing values), on file systems and snapshots; inherit_user
    clears one, also one that is not set (`keep --off` of something never kept); missing is NotFound."""
    with workspace(zfs, scratch, "user") as ws:
        env = ws.filesystem("env", user_props={DESCRIPTION: "first"})
        zfs.set_user(env, {KEEP: "on", LAST_GOOD: "1731576100", DESCRIPTION: TEXT})
        expected = {DESCRIPTION: TEXT, KEEP: "on", LAST_GOOD: "1731576100"}
        assert dict(_record(zfs, env).user_props) == expected, dict(_record(zfs, env).user_props)
        zfs.inherit_user(env, KEEP)
        del expected[KEEP]
        assert dict(_record(zfs, env).user_props) == expected, dict(_record(zfs, env).user_props)
        zfs.inherit_user(env, KEEP)
        zfs.inherit_user(env, CUSTOMER)
        assert dict(_record(zfs, env).user_props) == expected, dict(_record(zfs, env).user_props)

        snap = ws.snapshot(env, "s")
        zfs.set_user(snap, {KEEP: "on", DESCRIPTION: "kept"})
        assert dict(_record(zfs, snap).user_props) == {KEEP: "on", DESCRIPTION: "kept"}
        assert (
            dict(_record(zfs, env).user_props) == expected
        ), "set_user on a snapshot changed its file system"
        zfs.inherit_user(snap, KEEP)
        assert dict(_record(zfs, snap).user_props) == {DESCRIPTION: "kept"}

        missing = ws.name("missing")
        _raises(NotFoundError, lambda: zfs.set_user(missing, {KEEP: "on"}), "set_user on a missing one")
        _raises(NotFoundError, lambda: zfs.inherit_user(missing, KEEP), "inherit_user on a missing one")
        _raises(
            NotFoundError,
            lambda: zfs.set_user(f"{env}@missing", {KEEP: "on"}),
            "set_user on a missing snapshot",
        )


# --- holds -------------------------------------------------------------------------------------------
def check_holds(zfs: ZfsBackend, scratch: str) -> None:
    """holds() lists the tags; a tag twice is refused; releasing a tag that is not there, or holding or
    reading a missing snapshot, is NotFound."""
    with workspace(zfs, scratch, "holds") as ws:
        env = ws.filesystem("env")
        snap = ws.snapshot(env, "s")
        assert zfs.holds(snap) == frozenset(), zfs.holds(snap)
        zfs.hold(snap, FACTORY_HOLD_TAG)
        zfs.hold(snap, HOLD_TAG)
        assert zfs.holds(snap) == {FACTORY_HOLD_TAG, HOLD_TAG}, zfs.holds(snap)
        _raises(RefusedError, lambda: zfs.hold(snap, HOLD_TAG), "the same hold twice")
        zfs.release(snap, HOLD_TAG)
        assert zfs.holds(snap) == {FACTORY_HOLD_TAG}, zfs.holds(snap)
        _raises(NotFoundError, lambda: zfs.release(snap, HOLD_TAG), "releasing a tag that is not there")
        assert zfs.holds(snap) == {FACTORY_HOLD_TAG}, zfs.holds(snap)
        _raises(NotFoundError, lambda: zfs.hold(f"{env}@missing", HOLD_TAG), "holding a missing snapshot")
        _raises(NotFoundError, lambda: zfs.holds(f"{env}@missing"), "the holds of a missing snapshot")
        zfs.release(snap, FACTORY_HOLD_TAG)
        assert zfs.holds(snap) == frozenset(), zfs.holds(snap)


# --- destroying --------------------------------------------------------------------------------------
def check_destroy_refuses_held_snapshot(zfs: ZfsBackend, scratch: str) -> None:
    with workspace(zfs, scratch, "dheld") as ws:
        env = ws.filesystem("env")
        snap = ws.snapshot(env, "s")
        zfs.hold(snap, HOLD_TAG)
        _raises(RefusedError, lambda: zfs.destroy([snap]), "destroying a held snapshot")
        _assert_exist(zfs, [snap], "a refused destroy")
        _raises(
            RefusedError, lambda: zfs.destroy([snap, env]), "destroying a file system with a held snapshot"
        )
        _assert_exist(zfs, [snap, env], "a refused destroy")
        zfs.release(snap, HOLD_TAG)
        zfs.destroy([snap])
        _assert_gone(zfs, [snap], "destroy")


def check_destroy_refuses_cloned_snapshot(zfs: ZfsBackend, scratch: str) -> None:
    """A snapshot with a clone cannot go, not even with the clone in the same batch (it is checked against
    the state before the batch)."""
    with workspace(zfs, scratch, "dclone") as ws:
        env = ws.filesystem("env")
        snap = ws.snapshot(env, "s")
        clone = ws.name("clone")
        zfs.clone(clone, snap, {})
        _raises(RefusedError, lambda: zfs.destroy([snap]), "destroying a cloned snapshot")
        _assert_exist(zfs, [snap, clone], "a refused destroy")
        _raises(RefusedError, lambda: zfs.destroy([snap, clone]), "destroying a snapshot with its clone")
        _assert_exist(zfs, [snap, clone], "a refused destroy")
        zfs.destroy([clone])
        zfs.destroy([snap])
        _assert_gone(zfs, [snap, clone], "destroy")


def check_destroy_refuses_filesystem_with_snapshots_or_children(zfs: ZfsBackend, scratch: str) -> None:
    """A file system goes only with all its snapshots and children in the same batch."""
    with workspace(zfs, scratch, "dfs") as ws:
        env = ws.filesystem("env")
        s1 = ws.snapshot(env, "s1")
        s2 = ws.snapshot(env, "s2")
        _raises(RefusedError, lambda: zfs.destroy([env]), "destroying a file system with snapshots")
        _raises(
            RefusedError, lambda: zfs.destroy([s1, env]), "destroying a file system and some of its snapshots"
        )
        _assert_exist(zfs, [env, s1, s2], "a refused destroy")

        parent = ws.filesystem("parent")
        child = ws.filesystem("child", under=parent)
        _raises(RefusedError, lambda: zfs.destroy([parent]), "destroying a file system with a child")
        _assert_exist(zfs, [parent, child], "a refused destroy")


def check_destroy_is_all_or_nothing(zfs: ZfsBackend, scratch: str) -> None:
    """One refused item refuses the batch (RefusedError); missing items alone give NotFoundError; either way
    nothing is destroyed."""
    with workspace(zfs, scratch, "datomic") as ws:
        env = ws.filesystem("env")
        free = ws.snapshot(env, "free")
        held = ws.snapshot(env, "held")
        zfs.hold(held, HOLD_TAG)
        missing = f"{env}@missing"
        _raises(RefusedError, lambda: zfs.destroy([free, held]), "a batch with a held snapshot")
        _raises(
            RefusedError, lambda: zfs.destroy([free, missing, held]), "a batch with held and missing ones"
        )
        _raises(NotFoundError, lambda: zfs.destroy([free, missing]), "a batch with a missing snapshot")
        _raises(NotFoundError, lambda: zfs.destroy([missing]), "destroying a missing snapshot")
        _raises(NotFoundError, lambda: zfs.destroy([ws.name("missing")]), "destroying a missing file system")
        _assert_exist(zfs, [env, free, held], "a refused destroy")
        zfs.release(held, HOLD_TAG)


def check_destroy_filesystems_with_their_snapshots(zfs: ZfsBackend, scratch: str) -> None:
    """A batch of file systems (children too) with all their snapshots succeeds, in any order given."""
    with workspace(zfs, scratch, "dbatch") as ws:
        env = ws.filesystem("env")
        s1 = ws.snapshot(env, "s1")
        s2 = ws.snapshot(env, "s2")
        child = ws.filesystem("child", under=env)
        c1 = ws.snapshot(child, "c1")
        other = ws.filesystem("other")
        batch = [env, s2, child, s1, c1]
        zfs.destroy(batch)
        _assert_gone(zfs, batch, "destroy")
        _assert_exist(zfs, [other], "destroy took a dataset outside the batch")


def check_mounted_datasets_are_not_destroyed(zfs: ZfsBackend, scratch: str) -> None:
    """mount() shows in mounts() and list_tree; a mounted file system or snapshot is refused by destroy;
    rollback_destroying_newer works on a mounted file system; unmount() undoes mount()."""
    with workspace(zfs, scratch, "mounted") as ws:
        env = ws.filesystem("env")
        s0 = ws.snapshot(env, "s0")
        s1 = ws.snapshot(env, "s1")
        bare = ws.filesystem("bare")

        path = ws.directory()
        zfs.mount(bare, path)
        assert zfs.mounts().get(path) == bare, dict(zfs.mounts())
        assert _record(zfs, bare).mounted, "list_tree does not report a mounted file system as mounted"
        _raises(RefusedError, lambda: zfs.destroy([bare]), "destroying a mounted file system")
        _assert_exist(zfs, [bare], "a refused destroy")
        zfs.unmount(path)
        assert path not in zfs.mounts(), dict(zfs.mounts())
        assert not _record(zfs, bare).mounted

        snap_path = ws.directory()
        zfs.mount(s0, snap_path)
        assert zfs.mounts().get(snap_path) == s0, dict(zfs.mounts())
        _raises(RefusedError, lambda: zfs.destroy([s0]), "destroying a mounted snapshot")
        _assert_exist(zfs, [s0], "a refused destroy")
        zfs.unmount(snap_path)

        env_path = ws.directory()
        zfs.mount(env, env_path)
        assert zfs.rollback_destroying_newer(s0) == [s1]
        _assert_gone(zfs, [s1], "rollback")
        zfs.unmount(env_path)
        assert env_path not in zfs.mounts(), dict(zfs.mounts())


# --- rollback ----------------------------------------------------------------------------------------
def check_rollback_destroys_newer_oldest_first(zfs: ZfsBackend, scratch: str) -> None:
    """Returns the destroyed newer snapshots oldest first; to the newest one it destroys nothing; a missing
    snapshot is NotFound."""
    with workspace(zfs, scratch, "rollback") as ws:
        env = ws.filesystem("env")
        target = ws.snapshot(env, "s0")
        newer = [ws.snapshot(env, f"s{i}") for i in range(1, 5)]
        other = ws.filesystem("other")
        other_snap = ws.snapshot(other, "later")
        destroyed = zfs.rollback_destroying_newer(target)
        assert destroyed == newer, f"destroyed {destroyed}, expected {newer} (oldest first)"
        _assert_gone(zfs, newer, "rollback")
        _assert_exist(zfs, [target, other_snap], "rollback")
        assert set(_listing(zfs, env)) == {env, target}, sorted(_listing(zfs, env))
        assert (
            zfs.rollback_destroying_newer(target) == []
        ), "a rollback to the newest snapshot destroyed something"
        _raises(
            NotFoundError,
            lambda: zfs.rollback_destroying_newer(f"{env}@missing"),
            "rollback to a missing one",
        )


def check_rollback_refuses_held_or_cloned_newer(zfs: ZfsBackend, scratch: str) -> None:
    """RefusedError and nothing changed when a newer snapshot is held or cloned; rolling back to a cloned
    snapshot itself is fine."""
    with workspace(zfs, scratch, "rbrefuse") as ws:
        env = ws.filesystem("env")
        t0, t1, t2 = (ws.snapshot(env, f"t{i}") for i in range(3))
        zfs.hold(t2, HOLD_TAG)
        _raises(RefusedError, lambda: zfs.rollback_destroying_newer(t0), "a rollback past a held snapshot")
        _assert_exist(zfs, [t0, t1, t2], "a refused rollback")
        zfs.release(t2, HOLD_TAG)

        clone = ws.name("clone")
        zfs.clone(clone, t1, {})
        _raises(RefusedError, lambda: zfs.rollback_destroying_newer(t0), "a rollback past a cloned snapshot")
        _assert_exist(zfs, [t0, t1, t2, clone], "a refused rollback")

        assert zfs.rollback_destroying_newer(t1) == [t2]
        _assert_exist(zfs, [t0, t1, clone], "rollback")
        _assert_gone(zfs, [t2], "rollback")


CHECKS: tuple[Check, ...] = (
    check_list_tree_reports_the_tree,
    check_list_tree_of_missing_dataset_is_not_found,
    check_user_props_are_reported_only_where_set,
    check_exists,
    check_pool_info,
    check_snapshot_batch_is_atomic_and_carries_props,
    check_snapshot_of_existing_name_is_refused,
    check_clone_keeps_origin_and_props,
    check_names,
    check_set_native_canmount_and_mountpoint,
    check_set_user_and_inherit_user,
    check_holds,
    check_destroy_refuses_held_snapshot,
    check_destroy_refuses_cloned_snapshot,
    check_destroy_refuses_filesystem_with_snapshots_or_children,
    check_destroy_is_all_or_nothing,
    check_destroy_filesystems_with_their_snapshots,
    check_mounted_datasets_are_not_destroyed,
    check_rollback_destroys_newer_oldest_first,
    check_rollback_refuses_held_or_cloned_newer,
)


# --- running without pytest --------------------------------------------------------------------------
def describe_failure(exc: BaseException) -> str:
    """`FAIL: <class>: <message> [hint] @ <where, innermost frames last>` on one line."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BootagentError) and exc.hint:
        text += f" (hint: {exc.hint})"
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " <- ".join(
        f"{os.path.basename(f.filename)}:{f.lineno} {f.name}: {(f.line or '').strip()}"
        for f in reversed(frames)
    )
    cause = exc.__cause__
    if cause is not None:
        text += f" [caused by {type(cause).__name__}: {cause}]"
    return " | ".join(f"FAIL: {text} @ {where}".splitlines())


def run_checks(zfs: ZfsBackend, scratch: str, checks: Sequence[Check] = CHECKS) -> dict[str, str]:
    """Every check in order: {name: "ok" | "FAIL: ..."}."""
    results: dict[str, str] = {}
    for check in checks:
        try:
            check(zfs, scratch)
        except Exception as exc:
            results[check.__name__] = describe_failure(exc)
        else:
            results[check.__name__] = "ok"
    return results


def _real_backend() -> ZfsBackend:
    from bootagent.zfs.backend import ZfsSystem

    system = ZfsSystem()
    logging.getLogger("zfs_contract").info(
        "zfs contract: libzfs_core %s", "used" if system.lzc.available() else "NOT usable (command line only)"
    )
    return system


def main(argv: Sequence[str] | None = None, backend: Callable[[], ZfsBackend] = _real_backend) -> int:
    parser = argparse.ArgumentParser(
        prog="zfs_contract.py",
        description="Check a ZfsBackend against the ZFS contract; prints {check: result} as JSON.",
    )
    parser.add_argument(
        "scratch", help="an existing, empty file system to work below, e.g. rpool/contract-1a2b"
    )
    parser.add_argument("checks", nargs="*", metavar="CHECK", help="only these checks (default: all)")
    args = parser.parse_args(argv)
    scratch: str = args.scratch
    if "/" not in scratch or "@" in scratch:
        parser.error(f"{scratch!r} is not a file system below a pool (POOL/NAME)")
    by_name = {check.__name__: check for check in CHECKS}
    unknown = [name for name in args.checks if name not in by_name]
    if unknown:
        parser.error(f"no such check: {', '.join(unknown)} (known: {', '.join(by_name)})")
    selected = [by_name[name] for name in args.checks] if args.checks else list(CHECKS)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    zfs = backend()
    if not zfs.exists(scratch):
        print(
            f"zfs_contract.py: {scratch} does not exist; create it first (zfs create {scratch})",
            file=sys.stderr,
        )
        return 2
    results = run_checks(zfs, scratch, selected)
    print(json.dumps(results, indent=2))
    return 0 if all(result == "ok" for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
