"""An in-memory ZFS that behaves like the real one where the domain depends on it.

It models what the safety rules rely on: snapshots ordered by txg, clones keeping their origin, destroy
refusing held or cloned snapshots and file systems with snapshots or clones, atomic batches, rollback to the
latest snapshot only. Every change is recorded in `calls` so tests can assert what was (not) done.

tests/contract/zfs_contract.py holds it to what real ZFS does (the same checks run against a real pool in
the VM tier): where they disagree, fix the fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bootagent.errors import InvalidNameError, NotFoundError, RefusedError, ZfsError
from bootagent.model import PROP_PREFIX, DatasetInfo, DatasetKind, PoolHealth, PoolInfo
from bootagent.names import zfs_allows
from bootagent.zfs.interface import DiffChange, DiffEntry

MAX_DATASET_NAME = 255  # ZFS_MAX_DATASET_NAME_LEN (256) less the NUL


def check_zfs_name(name: str) -> None:
    """ZFS's own name rule (zfs_namecheck.c); libzfs_core reports a bad name as NameInvalid, which
    bootagent.zfs.lzc turns into InvalidNameError."""
    dataset, at, snap = name.partition("@")
    parts = [*dataset.split("/"), *([snap] if at else [])]
    if len(name) > MAX_DATASET_NAME or "@" in snap or not all(zfs_allows(p) for p in parts):
        raise InvalidNameError(f"invalid name: {name}")


@dataclass
class Node:
    name: str
    kind: DatasetKind
    creation: int
    createtxg: int
    used: int = 1 << 20
    referenced: int = 1 << 30
    origin: str | None = None
    mountpoint: str | None = None  # None: inherited from the parent file system
    canmount: str | None = "on"  # None for snapshots
    user_props: dict[str, str] = field(default_factory=dict)
    holds: set[str] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=dict)
    native: dict[str, str] = field(default_factory=dict)  # other local native properties (compression, ...)
    guid: int = 0


class FakeZfs:
    def __init__(self, pool: str = "rpool", *, size: int = 100 << 30, free: int = 60 << 30) -> None:
        self.pool = pool
        self.size = size
        self.free = free
        self.health = PoolHealth.ONLINE
        self.readonly = False
        self.bootfs: str | None = None
        self.guid = 0x1F2E3D4C5B6A7980
        self.nodes: dict[str, Node] = {}
        self.mounted: dict[str, str] = {}  # path -> dataset
        self.txg = 100
        self.clock = 1_700_000_000
        self.calls: list[tuple[str, ...]] = []
        self.fail_next: dict[str, Exception] = {}
        self.extra_pools: list[str] = []  # imported beside `pool`, sharing its size and health
        self.add_fs(pool, mountpoint="/" + pool)

    def add_pool(self, name: str) -> None:
        """Another imported pool (the HOWTO's boot pool)."""
        self.extra_pools.append(name)
        self.add_fs(name, mountpoint="/" + name)

    # --- building a tree -----------------------------------------------------------------------------
    def _tick(self) -> tuple[int, int]:
        self.txg += 1
        self.clock += 3600
        return self.clock, self.txg

    def add_fs(self, name: str, **kw: object) -> Node:
        creation, txg = self._tick()
        node = Node(name=name, kind=DatasetKind.FILESYSTEM, creation=creation, createtxg=txg, guid=txg * 7919)
        for key, value in kw.items():
            setattr(node, key, value)
        self.nodes[name] = node
        return node

    def add_snap(self, name: str, *, when: tuple[int, int] | None = None, **kw: object) -> Node:
        """A snapshot; `when` = (creation, txg) puts several in one transaction group."""
        ds = name.split("@", 1)[0]
        assert ds in self.nodes, ds
        creation, txg = when or self._tick()
        node = Node(
            name=name,
            kind=DatasetKind.SNAPSHOT,
            creation=creation,
            createtxg=txg,
            canmount=None,  # native file system properties do not apply to snapshots
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

    def mountpoint_of(self, name: str) -> str:
        """The effective mountpoint of a file system: its own, else inherited (`Node.mountpoint` None)
        from its parent like ZFS does: below the parent's path, or the parent's `none`/`legacy`."""
        own = self.nodes[name].mountpoint
        if own is not None:
            return own
        parent, _, leaf = name.rpartition("/")
        if parent not in self.nodes:
            return "/" + name
        above = self.mountpoint_of(parent)
        return above.rstrip("/") + "/" + leaf if above.startswith("/") else above

    def _info(self, node: Node) -> DatasetInfo:
        filesystem = node.kind is DatasetKind.FILESYSTEM
        return DatasetInfo(
            name=node.name,
            kind=node.kind,
            creation=node.creation,
            createtxg=node.createtxg,
            used=node.used,
            referenced=node.referenced,
            origin=node.origin,
            mountpoint=self.mountpoint_of(node.name) if filesystem else None,
            canmount=node.canmount if filesystem else None,
            mounted=node.name in self.mounted.values(),
            # only bootagent's namespace, and only what is set on the dataset itself (ZFS's inheritance
            # of user properties is not modelled, so everything in user_props is local)
            user_props={k: v for k, v in node.user_props.items() if k.startswith(PROP_PREFIX)},
        )

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
        if pool != self.pool and pool not in self.extra_pools:
            raise NotFoundError(f"no such pool: {pool}", hint="zpool import")
        bootfs = self.bootfs if pool == self.pool else None
        return PoolInfo(pool, self.health, self.size, self.free, self.readonly, bootfs)

    def imported_pools(self) -> list[str]:
        return [self.pool, *self.extra_pools]

    def pool_guid(self, pool: str) -> int:
        self.pool_info(pool)
        return self.guid

    def list_tree(self, root: str) -> list[DatasetInfo]:
        self._need(root)
        if "@" in root:  # a snapshot as the root: just that snapshot
            return [self._info(self.nodes[root])]
        out = []
        for node in self.nodes.values():
            ds = node.name.split("@", 1)[0]
            if ds == root or ds.startswith(root + "/"):
                out.append(self._info(node))
        return out

    def exists(self, name: str) -> bool:
        return name in self.nodes

    def holds(self, snapshot: str) -> frozenset[str]:
        return frozenset(self._need(snapshot).holds)

    def mounts(self) -> Mapping[str, str]:
        return dict(self.mounted)

    # --- ZfsBackend: changing ------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        """All in one transaction group (one txg, one creation time), or none."""
        self._fail("snapshot")
        for name in names:
            if "@" not in name:
                raise InvalidNameError(f"not a snapshot name: {name}")
            check_zfs_name(name)
        if len({name.split("/", 1)[0].split("@", 1)[0] for name in names}) > 1:  # as lzc_snapshot
            raise ZfsError("cannot snapshot datasets of several pools at once", errno=18)  # EXDEV
        for name in names:
            self._need(name.split("@", 1)[0])
            if name in self.nodes:
                raise RefusedError(f"cannot create snapshot '{name}': dataset already exists")
        if self.free < 1 << 20:
            raise ZfsError("out of space", errno=28)
        self.calls.append(("snapshot", *names))
        when = self._tick()
        for name in names:
            self.add_snap(name, when=when, user_props=dict(user_props))

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        self._fail("clone")
        check_zfs_name(name)
        if "@" in name:
            raise InvalidNameError(f"a clone is a file system, not a snapshot: {name}")
        self._need(name.rpartition("/")[0])
        if name in self.nodes:
            raise RefusedError(f"cannot create '{name}': dataset already exists")
        src = self._need(origin)
        self.calls.append(("clone", name, origin))
        self.add_fs(name, origin=origin, user_props=dict(user_props), files=dict(src.files), canmount="on")

    def set_native(self, name: str, props: Mapping[str, str]) -> None:
        self._fail("set_native")
        node = self._need(name)
        self.calls.append(("set_native", name, *sorted(f"{k}={v}" for k, v in props.items())))
        for key, value in props.items():
            if key in ("mountpoint", "canmount"):
                setattr(node, key, value)
            else:
                node.native[key] = value

    def set_user(self, name: str, props: Mapping[str, str]) -> None:
        self._fail("set_user")
        node = self._need(name)
        self.calls.append(("set_user", name, *sorted(f"{k}={v}" for k, v in props.items())))
        node.user_props.update(props)

    def inherit_user(self, name: str, prop: str) -> None:
        node = self._need(name)
        self.calls.append(("inherit_user", name, prop))
        node.user_props.pop(prop, None)

    def _destroy_check(self, name: str, batch: set[str]) -> str | None:
        """Why `name` cannot be destroyed in `batch`, checked against the state BEFORE the batch (as the
        destroy channel program does): a clone in the same batch still blocks its origin snapshot."""
        node = self.nodes.get(name)
        if node is None:
            return f"{name}: dataset does not exist"
        if name in self.mounted.values():
            return f"{name}: dataset is busy"
        if node.kind is DatasetKind.SNAPSHOT:
            if node.holds:
                return f"{name}: snapshot is held"
            if any(n.origin == name for n in self.nodes.values()):
                return f"{name}: snapshot has dependent clones"
        else:
            snaps = [s.name for s in self.snapshots_of(name) if s.name not in batch]
            if snaps:
                return f"{name}: filesystem has children (snapshots)"
            children = [n for n in self.nodes if n.startswith(name + "/") and "@" not in n and n not in batch]
            if children:
                return f"{name}: filesystem has children"
        return None

    def destroy(self, names: Sequence[str]) -> None:
        """All or nothing within each pool, pool by pool in the order the names come (as the backend's
        channel programs); NotFoundError when the only problems are missing names."""
        self._fail("destroy")
        by_pool: dict[str, list[str]] = {}
        for name in names:
            by_pool.setdefault(name.split("/", 1)[0].split("@", 1)[0], []).append(name)
        if len(by_pool) > 1:
            for group in by_pool.values():
                self.destroy(group)
            return
        batch = set(names)
        problems = {n: p for n in names if (p := self._destroy_check(n, batch))}
        if problems:
            text = "; ".join(problems.values())
            if all(n not in self.nodes for n in problems):
                raise NotFoundError(text)
            raise RefusedError(text)
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
        node = self._need(snapshot)
        if tag in node.holds:
            raise RefusedError(f"cannot hold snapshot '{snapshot}': tag already exists on this dataset")
        node.holds.add(tag)

    def release(self, snapshot: str, tag: str) -> None:
        node = self._need(snapshot)
        if tag not in node.holds:
            raise NotFoundError(
                f"cannot release hold from snapshot '{snapshot}': no such tag on this dataset"
            )
        node.holds.discard(tag)

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

    # --- ZfsBackend: for the factory reset --------------------------------------------------------------
    def properties(self, name: str) -> Mapping[str, str]:
        node = self._need(name)
        out = dict(node.native)
        out.update(node.user_props)
        if node.kind is DatasetKind.FILESYSTEM:
            if node.mountpoint is not None:
                out["mountpoint"] = node.mountpoint
            if node.canmount not in (None, "on"):
                out["canmount"] = node.canmount or ""
        out.setdefault("encryption", "off")
        out.setdefault("keyformat", "none")
        out.setdefault("keylocation", "none")
        out.setdefault("encryptionroot", name if out["encryption"] != "off" else "-")
        out["guid"] = str(node.guid or node.createtxg * 7919)
        out["type"] = node.kind.value
        return out

    def create(self, name: str, props: Mapping[str, str]) -> None:
        self._fail("create")
        check_zfs_name(name)
        self._need(name.rpartition("/")[0])
        if name in self.nodes:
            raise RefusedError(f"cannot create '{name}': dataset already exists")
        if props.get("encryption", "off") != "off" and not props.get("keylocation", "").startswith("file://"):
            raise ZfsError(f"cannot create '{name}': no key (keylocation must be a file here)")
        self.calls.append(("create", name))
        native = {k: v for k, v in props.items() if ":" not in k and k not in ("mountpoint", "canmount")}
        user = {k: v for k, v in props.items() if ":" in k}
        self.add_fs(
            name,
            mountpoint=props.get("mountpoint"),
            canmount=props.get("canmount", "on"),
            native=native,
            user_props=user,
        )

    def copy(self, snapshot: str, target: str, props: Mapping[str, str]) -> None:
        self._fail("copy")
        src = self._need(snapshot)
        target, _, snap_name = target.partition("@")
        self._need(target.rpartition("/")[0])
        if target in self.nodes:
            raise RefusedError(f"cannot receive new filesystem stream: destination '{target}' exists")
        self.calls.append(("copy", snapshot, target))
        native = {k: v for k, v in props.items() if ":" not in k and k not in ("mountpoint", "canmount")}
        self.add_fs(
            target,
            mountpoint=props.get("mountpoint"),
            canmount=props.get("canmount", "on"),
            native=native,
            user_props={k: v for k, v in props.items() if ":" in k},
            files=dict(src.files),
        )
        self.add_snap(f"{target}@{snap_name or snapshot.split('@', 1)[1]}")

    def wipe_free_space(self, pool: str) -> None:
        self._fail("wipe")
        self.calls.append(("wipe", pool))

    # --- helpers for tests ---------------------------------------------------------------------------
    def changes(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] not in {"mount", "unmount"}]


def reference_pool(zfs: FakeZfs | None = None) -> FakeZfs:
    """The reference layout of the README (and of the VM test bed), in memory."""
    z = zfs or FakeZfs()
    z.add_fs("rpool/ROOT", canmount="off", mountpoint="none")
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
    z.add_fs("rpool/FACTORY", canmount="off", mountpoint="none")
    z.add_fs("rpool/config", mountpoint="/etc/appliance", files={"/appliance.conf": "name=factory"})
    z.add_fs("rpool/bootagent", mountpoint="/var/lib/bootagent")
    z.bootfs = "rpool/ROOT/beta"
    z.mounted["/"] = "rpool/ROOT/beta"
    return z


def howto_pools(zfs: FakeZfs | None = None) -> FakeZfs:
    """The OpenZFS "Root on ZFS" layout, as bootagent left it: the reference pool's environments, each with
    its /boot half in bpool/BOOT/<name> and every snapshot taken on both halves with one pair mark."""
    z = reference_pool(zfs)
    z.add_pool("bpool")
    z.add_fs("bpool/BOOT", canmount="off", mountpoint="none")
    for be in ("alpha", "beta", "gamma"):
        root = z.nodes[f"rpool/ROOT/{be}"]
        z.add_fs(f"bpool/BOOT/{be}", mountpoint="/boot", canmount="noauto", files={"/vmlinuz": be})
        for snap in z.snapshots_of(root.name):
            mark = f"{snap.creation}-{be}"
            snap.user_props["org.bootagent:pair"] = mark
            z.add_snap(
                f"bpool/BOOT/{be}@{snap.name.split('@', 1)[1]}",
                when=(snap.creation, z._tick()[1]),
                user_props={"org.bootagent:pair": mark},
            )
    z.mounted["/boot"] = "bpool/BOOT/beta"
    return z
