"""ZfsSystem's routing: channel programs and libzfs_core where they work, the command line otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bootagent.errors import RefusedError
from bootagent.zfs.backend import ZfsSystem
from bootagent.zfs.interface import ZfsBackend
from bootagent.zfs.lzc import Lzc
from tests.unit.zfs.test_channel import FakeDataset, FakePool, LupaLzc, small_pool
from tests.unit.zfs.test_cli import GET_ARGV, LIST_ARGV, FakeRunner, Reply, data


class RecordingLzc(LupaLzc):
    """libzfs_core available: channel programs run in lupa, the direct calls are recorded."""

    def __init__(self, pool: FakePool) -> None:
        super().__init__(pool)
        self.calls: list[tuple[Any, ...]] = []

    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        self.calls.append(("snapshot", tuple(names), dict(user_props)))

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        self.calls.append(("clone", name, origin, dict(user_props)))

    def hold(self, snapshot: str, tag: str) -> None:
        self.calls.append(("hold", snapshot, tag))

    def release(self, snapshot: str, tag: str) -> None:
        self.calls.append(("release", snapshot, tag))

    def promote(self, name: str) -> None:
        self.calls.append(("promote", name))

    def rename(self, old: str, new: str) -> None:
        self.calls.append(("rename", old, new))

    def exists(self, name: str) -> bool:
        self.calls.append(("exists", name))
        return name in self.pool.datasets

    def get_holds(self, snapshot: str) -> frozenset[str]:
        self.calls.append(("get_holds", snapshot))
        return frozenset({"keep"})


class UnavailableLzc(Lzc):
    """No /dev/zfs: nothing may be called."""

    def available(self) -> bool:
        return False

    def _lzc(self) -> Any:
        raise AssertionError("libzfs_core must not be used when it is unavailable")


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text("rpool/ROOT/debian / zfs rw,relatime 0 0\nproc /proc proc rw 0 0\n")
    return path


def listing_runner() -> FakeRunner:
    return FakeRunner(
        {
            (*LIST_ARGV, "rpool/ROOT"): Reply(data("zfs_list_rpool_root.txt")),
            (*GET_ARGV, "rpool/ROOT"): Reply(data("zfs_get_rpool_root.txt")),
        }
    )


def test_zfs_system_is_a_zfs_backend(mounts: Path) -> None:
    backend: ZfsBackend = ZfsSystem(FakeRunner(), UnavailableLzc(), str(mounts))
    assert backend.mounts() == {"/": "rpool/ROOT/debian"}


class CountingLzc(RecordingLzc):
    """libzfs_core that counts how often it was asked whether it can be used (the probe loads it)."""

    def __init__(self, pool: FakePool) -> None:
        super().__init__(pool)
        self.probes = 0

    def available(self) -> bool:
        self.probes += 1
        return True


def test_listing_never_loads_libzfs_core(mounts: Path) -> None:
    runner = listing_runner()
    lzc = CountingLzc(small_pool())
    records = {r.name: r for r in ZfsSystem(runner, lzc, str(mounts)).list_tree("rpool/ROOT")}
    assert runner.calls == [(*LIST_ARGV, "rpool/ROOT"), (*GET_ARGV, "rpool/ROOT")]
    assert (lzc.probes, lzc.runs, lzc.calls) == (0, [], [])
    assert "rpool/ROOT/debian@pre upgrade" in records
    assert records["rpool/ROOT/debian"].mounted is True


def test_reads_use_libzfs_core_only_once_a_change_has_loaded_it(mounts: Path) -> None:
    runner = FakeRunner(
        {
            ("zfs", "list", "-H", "-o", "name", "rpool/ROOT/trial"): Reply("rpool/ROOT/trial\n"),
            ("zfs", "holds", "-H", "rpool/ROOT/trial@a"): Reply(""),
        }
    )
    lzc = CountingLzc(small_pool())
    system = ZfsSystem(runner, lzc, str(mounts))
    assert system.exists("rpool/ROOT/trial") is True
    assert system.holds("rpool/ROOT/trial@a") == frozenset()
    assert (lzc.probes, lzc.calls) == (0, [])  # the command line: nothing loaded for a read
    system.snapshot(["rpool/ROOT/trial@s"], {})
    assert system.exists("rpool/ROOT/trial") is True
    assert system.holds("rpool/ROOT/trial@a") == frozenset({"keep"})
    assert lzc.calls == [
        ("snapshot", ("rpool/ROOT/trial@s",), {}),
        ("exists", "rpool/ROOT/trial"),
        ("get_holds", "rpool/ROOT/trial@a"),
    ]
    assert len(runner.calls) == 2


def test_user_properties_use_the_command_line_until_a_change_has_loaded_libzfs_core(mounts: Path) -> None:
    """A boot's bless changes only user properties: it never pays for loading pyzfs."""
    runner = FakeRunner()
    pool = small_pool()
    lzc = CountingLzc(pool)
    system = ZfsSystem(runner, lzc, str(mounts))
    system.set_user("rpool/ROOT/trial", {"org.bootagent:last-good": "1", "org.bootagent:kernel": "6.1"})
    system.inherit_user("rpool/ROOT/trial", "org.bootagent:failed")
    assert runner.calls == [
        ("zfs", "set", "org.bootagent:last-good=1", "org.bootagent:kernel=6.1", "rpool/ROOT/trial"),
        ("zfs", "inherit", "org.bootagent:failed", "rpool/ROOT/trial"),
    ]
    assert (lzc.probes, lzc.runs, lzc.calls) == (0, [], [])
    system.snapshot(["rpool/ROOT/trial@s"], {})
    system.set_user("rpool/ROOT/trial", {"org.bootagent:description": "x"})
    assert [c for c in pool.calls if c[0].startswith("sync.")] == [
        ("sync.set_prop", "rpool/ROOT/trial", "org.bootagent:description", "x"),
    ]
    assert len(runner.calls) == 2


def test_without_libzfs_core_everything_goes_through_the_command_line(mounts: Path) -> None:
    runner = listing_runner()
    system = ZfsSystem(runner, UnavailableLzc(), str(mounts))
    assert len(system.list_tree("rpool/ROOT")) == 5
    system.snapshot(["rpool/ROOT/trial@s"], {"org.bootagent:created-by": "manual"})
    system.clone("rpool/ROOT/x", "rpool/ROOT/trial@s", {})
    system.set_user("rpool/ROOT/x", {"org.bootagent:keep": "on"})
    system.inherit_user("rpool/ROOT/x", "org.bootagent:keep")
    system.promote("rpool/ROOT/x")
    system.rename("rpool/ROOT/x", "rpool/ROOT/y")
    system.hold("rpool/ROOT/trial@s", "keep")
    system.release("rpool/ROOT/trial@s", "keep")
    system.destroy(["rpool/ROOT/y", "rpool/ROOT/trial@s"])
    assert system.exists("rpool/ROOT/y") is True
    assert system.holds("rpool/ROOT/trial@s") == frozenset()
    assert runner.calls[2:] == [
        ("zfs", "snapshot", "-o", "org.bootagent:created-by=manual", "rpool/ROOT/trial@s"),
        ("zfs", "clone", "rpool/ROOT/trial@s", "rpool/ROOT/x"),
        ("zfs", "set", "org.bootagent:keep=on", "rpool/ROOT/x"),
        ("zfs", "inherit", "org.bootagent:keep", "rpool/ROOT/x"),
        ("zfs", "promote", "rpool/ROOT/x"),
        ("zfs", "rename", "rpool/ROOT/x", "rpool/ROOT/y"),
        ("zfs", "hold", "keep", "rpool/ROOT/trial@s"),
        ("zfs", "release", "keep", "rpool/ROOT/trial@s"),
        ("zfs", "destroy", "rpool/ROOT/trial@s"),
        ("zfs", "destroy", "rpool/ROOT/y"),
        ("zfs", "list", "-H", "-o", "name", "rpool/ROOT/y"),
        ("zfs", "holds", "-H", "rpool/ROOT/trial@s"),
    ]


def test_with_libzfs_core_changes_use_it_and_channel_programs(mounts: Path) -> None:
    runner = FakeRunner()
    pool = small_pool()
    lzc = RecordingLzc(pool)
    system = ZfsSystem(runner, lzc, str(mounts))
    system.snapshot(["rpool/ROOT/trial@s"], {"org.bootagent:created-by": "manual"})
    system.clone("rpool/ROOT/x", "rpool/ROOT/trial@s", {"org.bootagent:keep": "on"})
    system.promote("rpool/ROOT/x")
    system.rename("rpool/ROOT/x", "rpool/ROOT/y")
    system.hold("rpool/ROOT/trial@a", "keep")
    system.release("rpool/ROOT/trial@a", "keep")
    assert system.exists("rpool/ROOT/trial") is True
    assert system.holds("rpool/ROOT/trial@a") == frozenset({"keep"})
    assert lzc.calls == [
        ("snapshot", ("rpool/ROOT/trial@s",), {"org.bootagent:created-by": "manual"}),
        ("clone", "rpool/ROOT/x", "rpool/ROOT/trial@s", {"org.bootagent:keep": "on"}),
        ("promote", "rpool/ROOT/x"),
        ("rename", "rpool/ROOT/x", "rpool/ROOT/y"),
        ("hold", "rpool/ROOT/trial@a", "keep"),
        ("release", "rpool/ROOT/trial@a", "keep"),
        ("exists", "rpool/ROOT/trial"),
        ("get_holds", "rpool/ROOT/trial@a"),
    ]

    system.set_user("rpool/ROOT/trial", {"org.bootagent:description": "x"})
    system.inherit_user("rpool/ROOT/trial", "org.bootagent:description")
    system.destroy(["rpool/ROOT/trial@a"])
    assert system.rollback_destroying_newer("rpool/ROOT/trial@b") == ["rpool/ROOT/trial@c"]
    assert [c for c in pool.calls if c[0].startswith("sync.")] == [
        ("sync.set_prop", "rpool/ROOT/trial", "org.bootagent:description", "x"),
        ("sync.inherit", "rpool/ROOT/trial", "org.bootagent:description"),
        ("sync.destroy", "rpool/ROOT/trial@a"),
        ("sync.destroy", "rpool/ROOT/trial@c"),
        ("sync.rollback", "rpool/ROOT/trial"),
    ]
    assert runner.calls == []


def test_destroying_a_mounted_filesystem_is_refused_before_anything(mounts: Path) -> None:
    runner = FakeRunner()
    pool = small_pool()
    lzc = RecordingLzc(pool)
    with pytest.raises(RefusedError, match=r"rpool/ROOT/debian \(at /\)"):
        ZfsSystem(runner, lzc, str(mounts)).destroy(["rpool/ROOT/debian", "rpool/ROOT/trial@a"])
    assert lzc.runs == []
    assert runner.calls == []


def test_rollback_of_a_mounted_filesystem_uses_zfs_rollback(mounts: Path) -> None:
    snap_list = (
        *("zfs", "list", "-H", "-p", "-t", "snapshot", "-d", "1"),
        *("-o", "name,createtxg,userrefs,clones", "rpool/ROOT/debian"),
    )
    runner = FakeRunner({snap_list: Reply(data("zfs_list_snapshots_debian.txt"))})
    lzc = RecordingLzc(small_pool())
    destroyed = ZfsSystem(runner, lzc, str(mounts)).rollback_destroying_newer("rpool/ROOT/debian@weekly")
    assert destroyed == ["rpool/ROOT/debian@daily"]
    assert runner.calls == [snap_list, ("zfs", "rollback", "-r", "rpool/ROOT/debian@weekly")]
    assert lzc.runs == []


def test_native_properties_mounting_bootfs_and_pools_use_the_command_line(mounts: Path) -> None:
    runner = FakeRunner()
    system = ZfsSystem(runner, RecordingLzc(small_pool()), str(mounts))
    system.set_native("rpool/ROOT/trial", {"canmount": "noauto"})
    system.mount("rpool/ROOT/trial", "/mnt/t")
    system.unmount("/mnt/t")
    system.set_bootfs("rpool", "rpool/ROOT/trial")
    system.import_pool("bpool", readonly=True)
    system.export_pool("bpool")
    assert runner.calls == [
        ("zfs", "set", "canmount=noauto", "rpool/ROOT/trial"),
        ("mount", "-t", "zfs", "-o", "ro,zfsutil", "rpool/ROOT/trial", "/mnt/t"),
        ("umount", "/mnt/t"),
        ("zpool", "set", "bootfs=rpool/ROOT/trial", "rpool"),
        ("zpool", "import", "-N", "-o", "readonly=on", "bpool"),
        ("zpool", "export", "bpool"),
    ]


def test_empty_changes_do_nothing(mounts: Path) -> None:
    runner = FakeRunner()
    lzc = RecordingLzc(small_pool())
    system = ZfsSystem(runner, lzc, str(mounts))
    system.snapshot([], {})
    system.set_user("rpool/ROOT/trial", {})
    system.destroy([])
    assert (runner.calls, lzc.calls, lzc.runs) == ([], [], [])


def test_names_of_two_pools_are_destroyed_by_one_program_per_pool(mounts: Path) -> None:
    """A channel program runs in one pool: a pair's halves (rpool/ROOT/x + bpool/BOOT/x) are two programs
    (found by real OpenZFS: one program for both fails with "dataset ... is not in the target pool")."""
    pool = small_pool()
    pool.datasets["bpool/BOOT/trial"] = FakeDataset("filesystem", 90, mountpoint="/boot", canmount="noauto")
    pool.datasets["bpool/BOOT/trial@a"] = FakeDataset("snapshot", 91)
    lzc = RecordingLzc(pool)
    ZfsSystem(FakeRunner(), lzc, str(mounts)).destroy(["rpool/ROOT/trial@a", "bpool/BOOT/trial@a"])
    assert [run[0] for run in lzc.runs] == ["rpool", "bpool"]
    assert "rpool/ROOT/trial@a" not in pool.datasets
    assert "bpool/BOOT/trial@a" not in pool.datasets
