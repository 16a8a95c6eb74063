"""The shipped channel programs, run in Lua 5.2 (lupa) against a fake `zfs` module that models a small pool.

`LupaLzc` stands in for libzfs_core's channel-program call: it runs the program in lupa, and converts the
returned Lua table the way ZCP (Lua -> nvlist) and pyzfs (nvlist -> dict of bytes) do, before the real
`convert_result`. So ChannelPrograms is tested end to end: argument names, Lua logic, result parsing.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

try:
    from lupa import lua52 as lupa
except ImportError:  # pragma: no cover - older lupa without per-version modules
    import lupa

from bootagent.errors import IncompleteError, NotFoundError, ReadOnlyPoolError, RefusedError
from bootagent.zfs.channel import (
    ChannelPrograms,
    as_list,
    failure_error,
    load_program,
)
from bootagent.zfs.lzc import DEFAULT_INSTRLIMIT, DEFAULT_MEMLIMIT, Lzc, convert_result

# --- a fake pool and its `zfs` Lua module -----------------------------------------------------------------


@dataclass
class FakeDataset:
    type: str
    createtxg: int
    user: dict[str, tuple[str, str]] = field(default_factory=dict)  # property -> (value, source)
    origin: str | None = None
    mountpoint: str | None = None
    canmount: str | None = None
    held: bool = False
    mounted: bool = False


@dataclass
class FakePool:
    datasets: dict[str, FakeDataset]
    readonly: bool = False
    fail_sync: set[str] = field(default_factory=set)  # names whose zfs.sync.* fails with EIO
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def snapshots(self, fs: str) -> list[str]:
        return [n for n in self.datasets if n.startswith(fs + "@")]

    def children(self, fs: str) -> list[str]:
        return [n for n in self.datasets if "@" not in n and n.rpartition("/")[0] == fs]

    def clones(self, snapshot: str) -> list[str]:
        return [n for n, d in self.datasets.items() if d.origin == snapshot]

    # zfs.*
    def exists(self, name: str) -> bool:
        return name in self.datasets

    def get_prop(self, name: str, prop: str) -> Any:
        ds = self.datasets[name]
        snapshot = ds.type == "snapshot"
        values: dict[str, Any] = {
            "type": ds.type,
            "creation": 1731490000 + ds.createtxg,
            "createtxg": ds.createtxg,
            "used": 1000 * ds.createtxg,
            "referenced": 2000 * ds.createtxg,
            "origin": ds.origin,
            "mountpoint": None if snapshot else ds.mountpoint,
            "canmount": None if snapshot else ds.canmount,
        }
        return values[prop]  # like ZCP: nothing (nil) for a property not valid here

    def user_properties(self, name: str) -> Iterator[tuple[str, str, str]]:
        """Like dsl_prop_get_all: local values and those inherited from ancestors (source = setter)."""
        fs, _, _ = name.partition("@")
        chain = [name] + ([fs] if fs != name else [])
        parent = fs
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            chain.append(parent)
        seen: set[str] = set()
        for holder in chain:
            for prop, (value, source) in self.datasets[holder].user.items():
                if prop not in seen:
                    seen.add(prop)
                    yield prop, value, source

    def check_destroy(self, name: str) -> int:
        ds = self.datasets.get(name)
        if ds is None:
            return errno.ENOENT
        if ds.type == "snapshot":
            if ds.held:
                return errno.EBUSY
            return errno.EEXIST if self.clones(name) else 0
        if self.snapshots(name) or ds.mounted:
            return errno.EBUSY
        return errno.EEXIST if self.children(name) else 0

    def check_rollback(self, fs: str) -> int:
        if self.datasets[fs].mounted:
            return errno.EBUSY
        return 0 if self.snapshots(fs) else errno.ESRCH

    def sync(self, action: str, name: str, *rest: str) -> int:
        self.calls.append((f"sync.{action}", name, *rest))
        if name in self.fail_sync:
            return errno.EIO
        if action == "destroy":
            err = self.check_destroy(name)
            if err == 0:
                del self.datasets[name]
            return err
        if action == "set_prop":
            self.datasets[name].user[rest[0]] = (rest[1], name)
        if action == "inherit":
            self.datasets[name].user.pop(rest[0], None)
        return 0

    def check(self, action: str, name: str, *rest: str) -> int:
        self.calls.append((f"check.{action}", name, *rest))
        if action == "destroy":
            return self.check_destroy(name)
        if action == "rollback":
            return self.check_rollback(name)
        if action in ("set_prop", "inherit"):
            return 0 if ":" in rest[0] else errno.EINVAL
        raise AssertionError(action)


def lua_runtime(pool: FakePool) -> Any:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def iterate(items: Iterator[Any]) -> Callable[[], Any]:
        return lambda *_: next(items, None)

    def recording(method: Callable[..., int]) -> dict[str, Callable[..., int]]:
        def bind(action: str) -> Callable[..., int]:
            return lambda name, *rest: method(action, name, *rest)

        return {a: bind(a) for a in ("destroy", "rollback", "set_prop", "inherit")}

    table = lua.table_from
    zfs = table(
        {
            "exists": pool.exists,
            "get_prop": pool.get_prop,
            "list": table(
                {
                    "children": lambda fs: iterate(iter(pool.children(fs))),
                    "snapshots": lambda fs: iterate(iter(pool.snapshots(fs))),
                    "user_properties": lambda name: iterate(pool.user_properties(name)),
                }
            ),
            "check": table(recording(pool.check)),
            "sync": table(recording(pool.sync)),
        }
    )
    g = lua.globals()
    g.zfs = zfs
    for name in ("ENOENT", "EBUSY", "EEXIST", "EINVAL", "EIO", "EROFS"):
        g[name] = getattr(errno, name)
    for name in ("pcall", "xpcall", "print", "load", "loadfile", "dofile", "require", "io", "os"):
        g[name] = None  # the ZCP sandbox has none of them
    return lua


def to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def from_lua(value: Any) -> Any:
    """A returned Lua value as pyzfs would hand it over after ZCP's Lua -> nvlist conversion."""
    if lupa.lua_type(value) == "table":
        out = {}
        for key, item in value.items():
            if isinstance(key, float | int) and not isinstance(key, bool):
                name = b"%d" % int(key)
            else:
                name = str(key).encode()
            out[name] = from_lua(item)
        return out
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class LupaLzc(Lzc):
    """Lzc whose channel programs run in lupa against a FakePool."""

    def __init__(self, pool: FakePool) -> None:
        super().__init__()
        self.pool = pool
        self.runs: list[tuple[str, bool, int, int]] = []

    def available(self) -> bool:
        return True

    def channel_program(
        self,
        pool: str,
        program: str,
        args: Mapping[str, Any],
        *,
        sync: bool,
        instrlimit: int = DEFAULT_INSTRLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
        what: str = "running a channel program",
    ) -> Any:
        self.runs.append((pool, sync, instrlimit, memlimit))
        if self.pool.readonly:
            raise ReadOnlyPoolError(f"{what}: pool is read-only", errno=errno.EROFS)
        lua = lua_runtime(self.pool)
        result = lua.execute(program, to_lua(lua, {"argv": args}))
        return convert_result(from_lua(result))


# --- the pool the tests use ------------------------------------------------------------------------------


def small_pool() -> FakePool:
    fs, snap, vol = "filesystem", "snapshot", "volume"
    return FakePool(
        {
            "rpool": FakeDataset(fs, 1, mountpoint="/", canmount="off"),
            "rpool/ROOT": FakeDataset(
                fs, 2, mountpoint="none", canmount="off", user={"org.bootagent:keep": ("on", "rpool/ROOT")}
            ),
            "rpool/ROOT/debian": FakeDataset(
                fs,
                3,
                mountpoint="/",
                canmount="noauto",
                mounted=True,
                user={
                    "org.bootagent:description": ("Debian 12", "rpool/ROOT/debian"),
                    "org.bootagent:kernel": ("6.1.0-27-amd64", "rpool/ROOT/debian"),
                    "com.example:other": ("x", "rpool/ROOT/debian"),
                },
            ),
            "rpool/ROOT/debian@install": FakeDataset(snap, 10, held=True),
            "rpool/ROOT/debian@pre": FakeDataset(
                snap, 20, user={"org.bootagent:created-by": ("manual", "rpool/ROOT/debian@pre")}
            ),
            "rpool/ROOT/debian/var": FakeDataset(fs, 4, mountpoint="/var", canmount="on"),
            "rpool/ROOT/trial": FakeDataset(
                fs, 30, origin="rpool/ROOT/debian@pre", mountpoint="/", canmount="noauto"
            ),
            "rpool/ROOT/trial@a": FakeDataset(snap, 40),
            "rpool/ROOT/trial@c": FakeDataset(snap, 60),
            "rpool/ROOT/trial@b": FakeDataset(snap, 50),
            "rpool/ROOT/swap": FakeDataset(vol, 5),
            "rpool/ROOT/swap@s": FakeDataset(snap, 6),
        }
    )


def programs(pool: FakePool) -> tuple[ChannelPrograms, LupaLzc]:
    lzc = LupaLzc(pool)
    return ChannelPrograms(lzc), lzc


def sync_calls(pool: FakePool) -> list[tuple[str, ...]]:
    return [c for c in pool.calls if c[0].startswith("sync.")]


# --- destroy.lua -----------------------------------------------------------------------------------------


def test_destroy_checks_everything_then_destroys_snapshots_before_filesystems() -> None:
    pool = small_pool()
    channel, lzc = programs(pool)
    names = ["rpool/ROOT/trial", "rpool/ROOT/trial@a", "rpool/ROOT/trial@b", "rpool/ROOT/trial@c"]
    destroyed = channel.destroy(names)
    assert destroyed == ["rpool/ROOT/trial@a", "rpool/ROOT/trial@b", "rpool/ROOT/trial@c", "rpool/ROOT/trial"]
    assert pool.calls == [
        ("check.destroy", "rpool/ROOT/trial@a"),
        ("check.destroy", "rpool/ROOT/trial@b"),
        ("check.destroy", "rpool/ROOT/trial@c"),
        ("sync.destroy", "rpool/ROOT/trial@a"),
        ("sync.destroy", "rpool/ROOT/trial@b"),
        ("sync.destroy", "rpool/ROOT/trial@c"),
        ("sync.destroy", "rpool/ROOT/trial"),
    ]
    assert not any(n.startswith("rpool/ROOT/trial") for n in pool.datasets)
    assert lzc.runs == [("rpool", True, DEFAULT_INSTRLIMIT, DEFAULT_MEMLIMIT)]


def test_destroy_a_lone_filesystem_is_checked_exactly() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    assert channel.destroy(["rpool/ROOT/debian/var"]) == ["rpool/ROOT/debian/var"]
    assert pool.calls == [
        ("check.destroy", "rpool/ROOT/debian/var"),
        ("sync.destroy", "rpool/ROOT/debian/var"),
    ]


def test_destroy_a_held_snapshot_changes_nothing() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    with pytest.raises(RefusedError) as info:
        channel.destroy(["rpool/ROOT/trial@a", "rpool/ROOT/debian@install"])
    assert "rpool/ROOT/debian@install is held, mounted or in use" in info.value.message
    assert info.value.hint == "nothing was destroyed"
    assert sync_calls(pool) == []
    assert "rpool/ROOT/trial@a" in pool.datasets


def test_destroy_a_cloned_snapshot_changes_nothing() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    with pytest.raises(RefusedError, match="rpool/ROOT/debian@pre has clones or dependents"):
        channel.destroy(["rpool/ROOT/debian@pre"])
    assert sync_calls(pool) == []


def test_destroy_a_filesystem_whose_snapshots_stay_is_refused() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    with pytest.raises(RefusedError) as info:
        channel.destroy(["rpool/ROOT/trial", "rpool/ROOT/trial@a"])
    assert (
        "rpool/ROOT/trial has a snapshot that is not being destroyed (rpool/ROOT/trial@" in info.value.message
    )
    assert sync_calls(pool) == []


def test_destroy_a_filesystem_with_a_child_is_refused() -> None:
    pool = small_pool()
    pool.datasets["rpool/ROOT/debian"].mounted = False
    for snap in ("rpool/ROOT/debian@install", "rpool/ROOT/debian@pre"):
        del pool.datasets[snap]
    pool.datasets["rpool/ROOT/trial"].origin = None
    channel, _ = programs(pool)
    with pytest.raises(
        RefusedError, match=r"has a child that is not being destroyed \(rpool/ROOT/debian/var\)"
    ):
        channel.destroy(["rpool/ROOT/debian"])
    assert sync_calls(pool) == []


def test_destroy_missing_names_is_not_found() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    with pytest.raises(NotFoundError, match="rpool/ROOT/gone@x does not exist"):
        channel.destroy(["rpool/ROOT/gone@x"])
    assert sync_calls(pool) == []


def test_destroy_that_fails_while_syncing_is_incomplete() -> None:
    pool = small_pool()
    pool.fail_sync = {"rpool/ROOT/trial@b"}
    channel, _ = programs(pool)
    with pytest.raises(IncompleteError) as info:
        channel.destroy(["rpool/ROOT/trial@a", "rpool/ROOT/trial@b"])
    assert "already destroyed: rpool/ROOT/trial@a" in info.value.message
    assert "rpool/ROOT/trial@b: Input/output error (errno 5)" in info.value.message


def test_destroy_nothing_runs_nothing() -> None:
    channel, lzc = programs(small_pool())
    assert channel.destroy([]) == []
    assert lzc.runs == []


# --- rollback_newer.lua ----------------------------------------------------------------------------------


def test_rollback_destroys_the_newer_snapshots_by_txg_then_rolls_back() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    destroyed = channel.rollback_newer("rpool/ROOT/trial@a")
    # zfs.list.snapshots gives them in no particular order (the fake: newest first); they are destroyed and
    # reported oldest first, as `zfs rollback -r` reports them
    assert destroyed == ["rpool/ROOT/trial@b", "rpool/ROOT/trial@c"]
    assert pool.calls[:2] == [
        ("check.destroy", "rpool/ROOT/trial@b"),
        ("check.destroy", "rpool/ROOT/trial@c"),
    ]
    assert pool.calls[-1] == ("sync.rollback", "rpool/ROOT/trial")
    assert [c[1] for c in pool.calls if c[0] == "sync.destroy"] == destroyed
    assert pool.snapshots("rpool/ROOT/trial") == ["rpool/ROOT/trial@a"]


def test_rollback_to_the_newest_snapshot_checks_the_rollback() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    assert channel.rollback_newer("rpool/ROOT/trial@c") == []
    assert pool.calls == [("check.rollback", "rpool/ROOT/trial"), ("sync.rollback", "rpool/ROOT/trial")]


def test_rollback_of_a_mounted_filesystem_is_refused_without_change() -> None:
    pool = small_pool()
    pool.datasets["rpool/ROOT/trial"].mounted = True
    channel, _ = programs(pool)
    with pytest.raises(RefusedError, match="rpool/ROOT/trial is held, mounted or in use"):
        channel.rollback_newer("rpool/ROOT/trial@c")
    assert sync_calls(pool) == []


def test_rollback_past_a_held_or_cloned_snapshot_changes_nothing() -> None:
    pool = small_pool()
    pool.datasets["rpool/ROOT/trial@c"].held = True
    channel, _ = programs(pool)
    with pytest.raises(RefusedError) as info:
        channel.rollback_newer("rpool/ROOT/trial@a")
    assert info.value.message == (
        "rolling rpool/ROOT/trial back to rpool/ROOT/trial@a: rpool/ROOT/trial@c is held, mounted or in use"
    )
    assert info.value.hint is not None
    assert "nothing was changed" in info.value.hint
    assert sync_calls(pool) == []
    assert len(pool.snapshots("rpool/ROOT/trial")) == 3


def test_rollback_to_a_missing_snapshot_is_not_found() -> None:
    channel, _ = programs(small_pool())
    with pytest.raises(NotFoundError):
        channel.rollback_newer("rpool/ROOT/trial@nope")


# --- set_user.lua ----------------------------------------------------------------------------------------


def test_set_user_sets_and_clears_after_checking() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    channel.set_user(
        "rpool/ROOT/trial",
        {"org.bootagent:description": "trial run", "org.bootagent:keep": "on"},
        clear=["org.bootagent:kernel"],
    )
    checks = [c for c in pool.calls if c[0].startswith("check.")]
    assert sorted(checks) == [
        ("check.inherit", "rpool/ROOT/trial", "org.bootagent:kernel"),
        ("check.set_prop", "rpool/ROOT/trial", "org.bootagent:description", "trial run"),
        ("check.set_prop", "rpool/ROOT/trial", "org.bootagent:keep", "on"),
    ]
    assert all(c[0].startswith("check.") for c in pool.calls[:3])
    assert pool.datasets["rpool/ROOT/trial"].user == {
        "org.bootagent:description": ("trial run", "rpool/ROOT/trial"),
        "org.bootagent:keep": ("on", "rpool/ROOT/trial"),
    }


def test_set_user_with_a_bad_property_changes_nothing() -> None:
    pool = small_pool()
    channel, _ = programs(pool)
    with pytest.raises(RefusedError, match="nokey"):
        channel.set_user("rpool/ROOT/trial", {"org.bootagent:keep": "on", "nokey": "x"})
    assert sync_calls(pool) == []


def test_set_user_on_a_missing_dataset_is_not_found() -> None:
    channel, _ = programs(small_pool())
    with pytest.raises(NotFoundError):
        channel.set_user("rpool/ROOT/gone", {"org.bootagent:keep": "on"})


# --- helpers ---------------------------------------------------------------------------------------------


def test_programs_ship_as_package_data() -> None:
    for name in ("destroy.lua", "rollback_newer.lua", "set_user.lua"):
        assert "argv" in load_program(name)


def test_failure_error_of_a_done_result_is_none() -> None:
    assert failure_error("x", {"stage": "done", "failed": {}, "destroyed": ["a"]}) is None
    assert as_list({}) == []
