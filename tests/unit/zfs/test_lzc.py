"""Lzc over the REAL pyzfs wrappers and error translation, with libzfs_core's C library replaced by a fake.

The fake `_lib` returns errno integers (and fills output nvlists through the real libnvpair), so pyzfs's own
argument handling and exception mapping run exactly as on a machine with ZFS.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libzfs_core
import libzfs_core._libzfs_core as lzc_impl
import pytest
from libzfs_core._nvlist import _nvlist_to_dict, nvlist_in
from libzfs_core.bindings.libnvpair import lib as nvpair_lib

from bootagent.errors import InvalidNameError, NotFoundError, ReadOnlyPoolError, RefusedError, ZfsError
from bootagent.zfs.lzc import (
    ChannelProgramLimitError,
    Lzc,
    LzcUnavailableError,
    convert_result,
    default_lib_dirs,
    encode_args,
    find_library,
    pin_shared_libraries,
)

ECHRNG = 44


def fill(out: Any, value: dict[bytes, Any]) -> None:
    """Put a copy of `value` as an nvlist into an `nvlist_t **` output argument (freed by pyzfs)."""
    assert nvpair_lib.nvlist_dup(nvlist_in(value), out, 0) == 0


class FakeLib:
    """Stands in for libzfs_core's C library: each lzc_* call is recorded and returns `returns[name]`."""

    def __init__(self) -> None:
        self.returns: dict[str, int] = {}
        self.outputs: dict[str, dict[bytes, Any]] = {}  # filled into the last `nvlist_t **` argument
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., int]:
        if not name.startswith("lzc_"):
            raise AttributeError(name)

        def call(*args: Any) -> int:
            self.calls.append((name, args))
            if name in self.outputs:
                fill(args[-1], self.outputs[name])
            return self.returns.get(name, 0)

        return call

    def args(self, name: str) -> tuple[Any, ...]:
        found = [args for called, args in self.calls if called == name]
        assert found, f"{name} was not called"
        return found[-1]


def nv(ptr: Any) -> dict[bytes, Any]:
    """An input nvlist argument as a dict (through the real libnvpair)."""
    result: dict[bytes, Any] = _nvlist_to_dict(ptr, {})
    return result


@pytest.fixture
def fake_lib(monkeypatch: pytest.MonkeyPatch) -> FakeLib:
    pin_shared_libraries(default_lib_dirs())  # libnvpair by full path: find_library would run ldconfig
    fake = FakeLib()
    monkeypatch.setattr(lzc_impl, "_lib", fake)
    return fake


@pytest.fixture
def dev_zfs(tmp_path: Path) -> str:
    path = tmp_path / "zfs"
    path.write_text("")
    return str(path)


def test_snapshot_passes_bytes_names_and_props(fake_lib: FakeLib) -> None:
    Lzc().snapshot(["rpool/ROOT/a@s", "rpool/ROOT/b@s"], {"org.bootagent:description": "before"})
    snaps, props, _errlist = fake_lib.args("lzc_snapshot")
    assert set(nv(snaps)) == {b"rpool/ROOT/a@s", b"rpool/ROOT/b@s"}
    assert nv(props) == {b"org.bootagent:description": b"before"}


def test_snapshot_that_exists_is_refused(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_snapshot"] = errno.EEXIST
    fake_lib.outputs["lzc_snapshot"] = {b"rpool/ROOT/a@s": errno.EEXIST}
    with pytest.raises(RefusedError) as info:
        Lzc().snapshot(["rpool/ROOT/a@s"], {})
    assert (
        info.value.message == "creating snapshot(s) rpool/ROOT/a@s: rpool/ROOT/a@s: snapshot already exists"
    )
    assert info.value.hint == "choose another name"


def test_clone_on_a_read_only_pool(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_clone"] = errno.EROFS
    with pytest.raises(ReadOnlyPoolError) as info:
        Lzc().clone("rpool/ROOT/b", "rpool/ROOT/a@s", {"org.bootagent:keep": "on"})
    assert info.value.errno == errno.EROFS
    assert "pool is read-only" in info.value.message
    name, origin, props = fake_lib.args("lzc_clone")
    assert (name, origin, nv(props)) == (b"rpool/ROOT/b", b"rpool/ROOT/a@s", {b"org.bootagent:keep": b"on"})


def test_destroy_held_snapshot_is_refused(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_destroy_snaps"] = errno.EBUSY
    fake_lib.outputs["lzc_destroy_snaps"] = {b"rpool/ROOT/a@s": errno.EBUSY}
    with pytest.raises(RefusedError, match=r"rpool/ROOT/a@s: snapshot is held") as info:
        Lzc().destroy_snapshots(["rpool/ROOT/a@s"])
    assert info.value.hint is not None
    assert "release the hold" in info.value.hint


def test_destroy_several_snapshots_reports_each_failure(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_destroy_snaps"] = errno.EEXIST
    fake_lib.outputs["lzc_destroy_snaps"] = {b"rpool/ROOT/a@s": errno.EEXIST, b"rpool/ROOT/a@t": errno.EBUSY}
    with pytest.raises(RefusedError) as info:
        Lzc().destroy_snapshots(["rpool/ROOT/a@s", "rpool/ROOT/a@t"])
    assert "rpool/ROOT/a@s: snapshot is cloned" in info.value.message
    assert "rpool/ROOT/a@t: snapshot is held" in info.value.message


def test_destroy_missing_filesystem_is_not_found(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_destroy"] = errno.ENOENT
    with pytest.raises(NotFoundError, match="destroying rpool/ROOT/x: rpool/ROOT/x: filesystem not found"):
        Lzc().destroy_filesystem("rpool/ROOT/x")
    assert fake_lib.args("lzc_destroy") == (b"rpool/ROOT/x",)


def test_destroy_busy_filesystem_is_refused(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_destroy"] = errno.EBUSY
    with pytest.raises(RefusedError, match="dataset is busy"):
        Lzc().destroy_filesystem("rpool/ROOT/x")


def test_generic_error_has_name_and_message_the_right_way_round(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_rename"] = errno.EPERM
    with pytest.raises(ZfsError) as info:
        Lzc().rename("rpool/ROOT/a", "rpool/ROOT/b")
    assert (
        info.value.message
        == "renaming rpool/ROOT/a to rpool/ROOT/b: rpool/ROOT/a: failed to rename dataset (errno 1)"
    )
    assert info.value.errno == errno.EPERM


def test_invalid_name_is_a_usage_error(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_destroy"] = errno.EINVAL
    with pytest.raises(InvalidNameError):
        Lzc().destroy_filesystem("rpool/bad*name")


def test_hold_on_a_missing_snapshot_is_not_found(fake_lib: FakeLib) -> None:
    fake_lib.outputs["lzc_hold"] = {b"rpool/ROOT/a@gone": errno.ENOENT}
    with pytest.raises(NotFoundError, match="does not exist"):
        Lzc().hold("rpool/ROOT/a@gone", "keep")
    holds, _fd, _errlist = fake_lib.args("lzc_hold")
    assert nv(holds) == {b"rpool/ROOT/a@gone": b"keep"}


def test_release_of_a_missing_tag_is_not_found(fake_lib: FakeLib) -> None:
    fake_lib.outputs["lzc_release"] = {b"rpool/ROOT/a@s#keep": errno.ENOENT}
    with pytest.raises(NotFoundError, match="no such hold"):
        Lzc().release("rpool/ROOT/a@s", "keep")


def test_get_holds_returns_str_tags(fake_lib: FakeLib) -> None:
    fake_lib.outputs["lzc_get_holds"] = {b"org.bootagent.factory": 1731490000, b"keep": 1731490001}
    assert Lzc().get_holds("rpool/ROOT/a@s") == frozenset({"org.bootagent.factory", "keep"})


def test_exists_promote_and_rollback(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_exists"] = 1
    lzc = Lzc()
    assert lzc.exists("rpool/ROOT/a") is True
    lzc.promote("rpool/ROOT/b")
    fake_lib.returns["lzc_rollback_to"] = errno.EEXIST
    with pytest.raises(RefusedError, match="snapshot is not the latest"):
        lzc.rollback_to("rpool/ROOT/a", "rpool/ROOT/a@old")
    assert fake_lib.args("lzc_exists") == (b"rpool/ROOT/a",)
    assert fake_lib.args("lzc_promote")[0] == b"rpool/ROOT/b"
    assert fake_lib.args("lzc_rollback_to") == (b"rpool/ROOT/a", b"rpool/ROOT/a@old")


@pytest.mark.parametrize(
    ("sync", "c_name"), [(True, "lzc_channel_program"), (False, "lzc_channel_program_nosync")]
)
def test_channel_program_encodes_args_and_converts_the_result(
    fake_lib: FakeLib, sync: bool, c_name: str
) -> None:
    fake_lib.outputs[c_name] = {
        b"return": {
            b"exists": True,
            b"datasets": {b"1": {b"name": b"rpool/a", b"used": 5}, b"2": {b"name": b"rpool/a@s", b"used": 0}},
            b"empty": {},
        }
    }
    result = Lzc().channel_program(
        "rpool", "return 1", {"root": "rpool/a", "names": ["x", "y"], "none": []}, sync=sync, memlimit=1 << 20
    )
    assert result == {
        "exists": True,
        "datasets": [{"name": "rpool/a", "used": 5}, {"name": "rpool/a@s", "used": 0}],
        "empty": {},
    }
    pool, program, instrlimit, memlimit, params, _out = fake_lib.args(c_name)
    assert (pool, program, instrlimit, memlimit) == (b"rpool", b"return 1", 10_000_000, 1 << 20)
    assert nv(params) == {b"argv": {b"root": b"rpool/a", b"names": [b"x", b"y"], b"none": {}}}


def test_channel_program_memory_limit(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_channel_program_nosync"] = errno.ENOMEM
    with pytest.raises(ChannelProgramLimitError, match="larger than its memory limit"):
        Lzc().channel_program("rpool", "", {}, sync=False, what="listing rpool")


def test_channel_program_runtime_error_carries_the_lua_message(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_channel_program"] = ECHRNG
    fake_lib.outputs["lzc_channel_program"] = {b"error": b'[string "channel program"]:3: boom'}
    with pytest.raises(ZfsError, match="channel program failed: .*:3: boom"):
        Lzc().channel_program("rpool", "", {}, sync=True)


def test_channel_program_on_a_read_only_pool(fake_lib: FakeLib) -> None:
    fake_lib.returns["lzc_channel_program_nosync"] = errno.EROFS
    with pytest.raises(ReadOnlyPoolError):
        Lzc().channel_program("rpool", "", {}, sync=False)


def test_available_when_dev_zfs_opens_and_the_library_initialises(fake_lib: FakeLib, dev_zfs: str) -> None:
    assert Lzc(dev_zfs=dev_zfs).available() is True
    assert fake_lib.args("lzc_exists") == (b"",)


def test_unavailable_without_dev_zfs(fake_lib: FakeLib, tmp_path: Path) -> None:
    assert Lzc(dev_zfs=str(tmp_path / "missing")).available() is False
    assert fake_lib.calls == []


class FakeCLibrary:
    """The C library under pyzfs's lazy initialiser: libzfs_core_init fails as without /dev/zfs."""

    def libzfs_core_init(self) -> int:
        return errno.ENOENT


def test_initialization_failure(monkeypatch: pytest.MonkeyPatch, dev_zfs: str) -> None:
    lazy_init = type(lzc_impl._lib)  # pyzfs's LazyInit: runs libzfs_core_init on first use
    monkeypatch.setattr(lzc_impl, "_lib", lazy_init(FakeCLibrary()))
    with pytest.raises(LzcUnavailableError, match="could not be initialised") as info:
        Lzc().exists("rpool")
    assert info.value.errno == errno.ENOENT
    assert Lzc(dev_zfs=dev_zfs).available() is False


def test_convert_result() -> None:
    assert convert_result({b"1": b"a", b"2": b"b", b"3": b"c"}) == ["a", "b", "c"]
    assert convert_result({b"2": b"b", b"1": b"a"}) == ["a", "b"]
    assert convert_result({b"1": b"a", b"3": b"c"}) == {"1": "a", "3": "c"}
    assert convert_result({b"k": {b"1": {b"x": 1}}, b"flag": False, b"n": None}) == {
        "k": [{"x": 1}],
        "flag": False,
        "n": None,
    }
    assert convert_result({}) == {}
    assert convert_result([b"x", b"y"]) == ["x", "y"]
    assert convert_result(b"caf\xc3\xa9") == "café"


def test_encode_args() -> None:
    assert encode_args({"name": "rpool/a", "n": 5, "flag": True, "list": ["a"], "empty": []}) == {
        b"name": b"rpool/a",
        b"n": b"5",
        b"flag": True,
        b"list": [b"a"],
        b"empty": {},
    }
    with pytest.raises(TypeError):
        encode_args({"x": 1.5})


def test_find_library_prefers_the_first_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "libzfs_core.so.3").write_text("")
    (first / "libzfs_core.so.3.0.0").write_text("")
    (first / "libzfs_core.so.3").write_text("")
    assert find_library("libzfs_core.so", [str(first), str(second)]) == str(first / "libzfs_core.so.3")
    assert find_library("libnvpair.so", [str(first), str(second)]) is None


def test_the_module_is_imported_lazily() -> None:
    lzc = Lzc()
    assert lzc._module is None
    assert lzc._lzc() is libzfs_core
