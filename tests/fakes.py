"""An in-memory ZFS that behaves like the real one where the domain depends on it.

It models what the safety rules rely on: snapshots ordered by txg, clones keeping their origin, destroy
refusing held or cloned snapshots and file systems with snapshots or clones, atomic batches, rollback to the
latest snapshot only. Every change is recorded in `calls` so tests can assert what was (not) done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bootagent.errors import NotFoundError, RefusedError, ZfsError
from bootagent.model import DatasetInfo, DatasetKind, PoolHealth, PoolInfo
from bootagent.zfs.interface import DiffChange, DiffEntry


@dataclass
class Node:
    name: str
    kind: DatasetKind
    creation: int
    createtxg: int
    used: int = 1 << 20
    referenced: int = 1 << 30
    origin: str | None = None
    mountpoint: str | None = None
    canmount: str | None = "on"
    user_props: dict[str, str] = field(default_factory=dict)
    holds: set[str] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=dict)


class FakeZfs:
    def __init__(self, pool: str = "rpool", *, size: int = 100 << 30, free: int = 60 << 30) -> None:
        self.pool = pool
        self.size = size
        self.free = free
        self.health = PoolHealth.ONLINE
        self.readonly = False
        self.bootfs: str | None = None
        self.nodes: dict[str, Node] = {}
        self.mounted: dict[str, str] = {}  # path -> dataset
        self.txg = 100
        self.clock = 1_700_000_000
        self.calls: list[tuple[str, ...]] = []
        self.fail_next: dict[str, Exception] = {}
        self.add_fs(pool, mountpoint="/" + pool)

    # --- building a tree -----------------------------------------------------------------------------
    def _tick(self) -> tuple[int, int]:
        self.txg += 1
        self.clock += 3600
        return self.clock, self.txg

    def add_fs(self, name: str, **kw: object) -> Node:
        creation, txg = self._tick()
        node = Node(name=name, kind=DatasetKind.FILESYSTEM, creation=creation, createtxg=txg)
        for key, value in kw.items():
            setattr(node, key, value)
        self.nodes[name] = node
        return node

    def add_snap(self, name: str, **kw: object) -> Node:
        ds = name.split("@", 1)[0]
        assert ds in self.nodes, ds
        creation, txg = self._tick()
        node = Node(
            name=name,
            kind=DatasetKind.SNAPSHOT,
            creation=creation,
            createtxg=txg,
            files=dict(self.nodes[ds].files),
        )
        for key, value in kw.items():
            setattr(node, key, value)
        self.nodes[name] = node
        return node

    def _fail(self, op: str) -> None:
        if op in self.fail_next:
            raise self.fail_next.pop(op)

    def _need(self, name: str) -> Node:
        if name not in self.nodes:
            raise NotFoundError(f"dataset does not exist: {name}")
        return self.nodes[name]

    def snapshots_of(self, ds: str) -> list[Node]:
        return sorted(
            (
                n
                for n in self.nodes.values()
                if n.kind is DatasetKind.SNAPSHOT and n.name.startswith(ds + "@")
            ),
            key=lambda n: n.createtxg,
        )

    # --- ZfsBackend: reading -------------------------------------------------------------------------
    def pool_info(self, pool: str) -> PoolInfo:
        if pool != self.pool:
            raise NotFoundError(f"no such pool: {pool}", hint="zpool import")
        return PoolInfo(pool, self.health, self.size, self.free, self.readonly, self.bootfs)

    def list_tree(self, root: str) -> list[DatasetInfo]:
        self._need(root)
        out = []
        for node in self.nodes.values():
            ds = node.name.split("@", 1)[0]
            if ds == root or ds.startswith(root + "/"):
                out.append(
                    DatasetInfo(
                        name=node.name,
                        kind=node.kind,
                        creation=node.creation,
                        createtxg=node.createtxg,
                        used=node.used,
                        referenced=node.referenced,
                        origin=node.origin,
                        mountpoint=node.mountpoint,
                        canmount=node.canmount,
                        mounted=node.name in self.mounted.values(),
                        user_props=dict(node.user_props),
                    )
                )
        return out

    def exists(self, name: str) -> bool:
        return name in self.nodes

    def holds(self, snapshot: str) -> frozenset[str]:
        return frozenset(self._need(snapshot).holds)

    def mounts(self) -> Mapping[str, str]:
        return dict(self.mounted)

    # --- ZfsBackend: changing ------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        self._fail("snapshot")
        for name in names:
            self._need(name.split("@", 1)[0])
            if name in self.nodes:
                raise ZfsError(f"snapshot already exists: {name}")
        if self.free < 1 << 20:
            raise ZfsError("out of space", errno=28)
        self.calls.append(("snapshot", *names))
        for name in names:
            self.add_snap(name, user_props=dict(user_props))

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        self._fail("clone")
        src = self._need(origin)
        if name in self.nodes:
            raise ZfsError(f"dataset already exists: {name}")
        self.calls.append(("clone", name, origin))
        self.add_fs(name, origin=origin, user_props=dict(user_props), files=dict(src.files), canmount="on")

    def set_native(self, name: str, props: Mapping[str, str]) -> None:
        self._fail("set_native")
        node = self._need(name)
        self.calls.append(("set_native", name, *sorted(f"{k}={v}" for k, v in props.items())))
        for key, value in props.items():
            setattr(node, key, value)

    def set_user(self, name: str, props: Mapping[str, str]) -> None:
        self._fail("set_user")
        self.calls.append(("set_user", name, *sorted(f"{k}={v}" for k, v in props.items())))
        self._need(name).user_props.update(props)

    def inherit_user(self, name: str, prop: str) -> None:
        self.calls.append(("inherit_user", name, prop))
        self._need(name).user_props.pop(prop, None)

    def _destroy_check(self, name: str, batch: set[str]) -> str | None:
        node = self.nodes.get(name)
        if node is None:
            return f"{name}: dataset does not exist"
        if node.kind is DatasetKind.SNAPSHOT:
            if node.holds:
                return f"{name}: snapshot is held"
            clones = [n.name for n in self.nodes.values() if n.origin == name and n.name not in batch]
            if clones:
                return f"{name}: snapshot has dependent clones"
        else:
            snaps = [s.name for s in self.snapshots_of(name) if s.name not in batch]
            if snaps:
                return f"{name}: filesystem has children (snapshots)"
            if name in self.mounted.values():
                return f"{name}: dataset is busy"
        return None

    def destroy(self, names: Sequence[str]) -> None:
        self._fail("destroy")
        batch = set(names)
        problems = [p for n in names if (p := self._destroy_check(n, batch))]
        if problems:
            raise RefusedError("; ".join(problems))
        self.calls.append(("destroy", *names))
        for name in names:
            self.free += self.nodes[name].used
            del self.nodes[name]

    def rollback_destroying_newer(self, snapshot: str) -> list[str]:
        self._fail("rollback")
        target = self._need(snapshot)
        ds = snapshot.split("@", 1)[0]
        newer = [s.name for s in self.snapshots_of(ds) if s.createtxg > target.createtxg]
        batch = set(newer)
        problems = [p for n in newer if (p := self._destroy_check(n, batch))]
        if problems:
            raise RefusedError("; ".join(problems))
        self.calls.append(("rollback", snapshot))
        for name in newer:
            del self.nodes[name]
        self.nodes[ds].files = dict(target.files)
        return newer

    def promote(self, name: str) -> None:
        self.calls.append(("promote", name))

    def rename(self, old: str, new: str) -> None:
        self.calls.append(("rename", old, new))
        self.nodes[new] = self.nodes.pop(old)
        self.nodes[new].name = new

    def hold(self, snapshot: str, tag: str) -> None:
        self._need(snapshot).holds.add(tag)

    def release(self, snapshot: str, tag: str) -> None:
        self._need(snapshot).holds.discard(tag)

    def mount(self, name: str, path: str) -> None:
        self._need(name)
        self.calls.append(("mount", name, path))
        self.mounted[path] = name

    def unmount(self, path: str) -> None:
        self.calls.append(("unmount", path))
        del self.mounted[path]

    def set_bootfs(self, pool: str, dataset: str) -> None:
        self._fail("set_bootfs")
        self._need(dataset)
        self.calls.append(("set_bootfs", pool, dataset))
        self.bootfs = dataset

    def diff(self, older: str, newer: str) -> list[DiffEntry]:
        a = self._need(older).files
        b = self._need(newer).files
        out = [DiffEntry(DiffChange.REMOVED, p) for p in sorted(a.keys() - b.keys())]
        out += [DiffEntry(DiffChange.ADDED, p) for p in sorted(b.keys() - a.keys())]
        out += [DiffEntry(DiffChange.MODIFIED, p) for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
        return out

    # --- helpers for tests ---------------------------------------------------------------------------
    def changes(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] not in {"mount", "unmount"}]


def reference_pool(zfs: FakeZfs | None = None) -> FakeZfs:
    """The reference layout of the README (and of the VM test bed), in memory."""
    z = zfs or FakeZfs()
    z.add_fs("rpool/ROOT", canmount="off", mountpoint=None)
    for be in ("alpha", "beta", "gamma"):
        z.add_fs(
            f"rpool/ROOT/{be}",
            mountpoint="/",
            canmount="noauto",
            user_props={
                "org.bootagent:description": f"{be} system",
                "org.bootagent:created-by": "manual",
                "org.bootagent:kernel": "6.12.0-1-amd64" if be == "gamma" else "6.1.0-30-amd64",
            },
            files={"/etc/marker": be, "/etc/step": "0"},
        )
        for step in (1, 2, 3):
            z.nodes[f"rpool/ROOT/{be}"].files["/etc/step"] = str(step)
            z.add_snap(
                f"rpool/ROOT/{be}@s{step}",
                user_props={
                    "org.bootagent:description": f"step {step}",
                    "org.bootagent:created-by": "manual",
                },
            )
        z.nodes[f"rpool/ROOT/{be}"].files["/etc/step"] = "4"
    z.add_fs("rpool/FACTORY", canmount="off")
    z.add_fs("rpool/FACTORY/system")
    z.add_snap("rpool/FACTORY/system@factory", holds={"org.bootagent.factory"})
    z.add_fs("rpool/config", mountpoint="/etc/appliance")
    z.add_fs("rpool/bootagent", mountpoint="/var/lib/bootagent")
    z.bootfs = "rpool/ROOT/beta"
    z.mounted["/"] = "rpool/ROOT/beta"
    return z
