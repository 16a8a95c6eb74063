"""ZfsCli against recorded zfs/zpool output and stderr texts of real OpenZFS."""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootagent.errors import CommandError, InvalidNameError, NotFoundError, ReadOnlyPoolError, RefusedError
from bootagent.model import DatasetInfo, DatasetKind, PoolHealth, PoolInfo, Prop
from bootagent.mounts import unescape_mounts
from bootagent.runner import DEFAULT_TIMEOUT, CommandResult
from bootagent.zfs.cli import LIST_COLUMNS, USER_PROPS, ZfsCli, destroy_order, unescape_diff
from bootagent.zfs.interface import DiffChange, DiffEntry

DATA = Path(__file__).parent / "data"


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@dataclass
class Reply:
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


@dataclass
class FakeRunner:
    """Records argv; answers from `replies` (argv tuple -> Reply), else success with no output."""

    replies: dict[tuple[str, ...], Reply] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        reply = self.replies.get(key, Reply())
        if check and reply.returncode != 0:
            raise CommandError(key, returncode=reply.returncode, stderr=reply.stderr)
        return CommandResult(key, reply.returncode, reply.stdout, reply.stderr)


LIST_ARGV = ("zfs", "list", "-H", "-p", "-r", "-t", "filesystem,snapshot", "-o", ",".join(LIST_COLUMNS))
GET_ARGV = (
    *("zfs", "get", "-H", "-p", "-r", "-t", "filesystem,snapshot", "-s", "local"),
    *("-o", "name,property,value", USER_PROPS),
)


def failing(stderr_file: str) -> Reply:
    return Reply(stderr=data(stderr_file), returncode=1)


def test_list_tree_parses_natives_and_local_user_props() -> None:
    runner = FakeRunner(
        {
            (*LIST_ARGV, "rpool/ROOT"): Reply(data("zfs_list_rpool_root.txt")),
            (*GET_ARGV, "rpool/ROOT"): Reply(data("zfs_get_rpool_root.txt")),
        }
    )
    records = {r.name: r for r in ZfsCli(runner).list_tree("rpool/ROOT")}

    assert runner.calls == [(*LIST_ARGV, "rpool/ROOT"), (*GET_ARGV, "rpool/ROOT")]
    assert records["rpool/ROOT"] == DatasetInfo(
        name="rpool/ROOT",
        kind=DatasetKind.FILESYSTEM,
        creation=1731490000,
        createtxg=14,
        used=3221225472,
        referenced=98304,
        origin=None,
        mountpoint="none",
        canmount="off",
        mounted=False,
    )
    debian = records["rpool/ROOT/debian"]
    assert (debian.mountpoint, debian.canmount, debian.mounted) == ("/", "noauto", True)
    assert debian.user_props == {Prop.DESCRIPTION: "Debian 12 as installed", Prop.LAST_GOOD: "1731576100"}
    snap = records["rpool/ROOT/debian@pre upgrade"]
    assert snap.kind is DatasetKind.SNAPSHOT
    assert (snap.createtxg, snap.mountpoint, snap.canmount, snap.mounted) == (5012, None, None, False)
    assert snap.user_props == {
        Prop.DESCRIPTION: "before apt upgrade\nsecond line",
        Prop.CREATED_BY: "package-manager",
    }
    assert records["rpool/ROOT/debian@install"].user_props == {}
    trial = records["rpool/ROOT/trial"]
    assert trial.origin == "rpool/ROOT/debian@pre upgrade"
    assert trial.user_props == {Prop.KEEP: "on"}


def test_list_tree_of_a_missing_dataset_is_not_found() -> None:
    runner = FakeRunner({(*LIST_ARGV, "rpool/ROOT/nope"): failing("stderr_not_exist.txt")})
    with pytest.raises(NotFoundError, match="listing rpool/ROOT/nope: cannot open 'rpool/ROOT/nope'"):
        ZfsCli(runner).list_tree("rpool/ROOT/nope")


def test_pool_info_parses_one_zpool_list_line() -> None:
    argv = ("zpool", "list", "-H", "-p", "-o", "name,health,size,free,readonly,bootfs")
    runner = FakeRunner(
        {
            (*argv, "rpool"): Reply(data("zpool_list_rpool.txt")),
            (*argv, "bpool"): Reply(data("zpool_list_bpool_ro.txt")),
        }
    )
    cli = ZfsCli(runner)
    assert cli.pool_info("rpool") == PoolInfo(
        "rpool", PoolHealth.ONLINE, 21474836480, 17179869184, readonly=False, bootfs="rpool/ROOT/debian"
    )
    assert cli.pool_info("bpool") == PoolInfo(
        "bpool", PoolHealth.DEGRADED, 1073741824, 805306368, readonly=True, bootfs=None
    )


def test_pool_info_of_a_missing_pool_hints_at_import() -> None:
    argv = ("zpool", "list", "-H", "-p", "-o", "name,health,size,free,readonly,bootfs", "tank")
    runner = FakeRunner({argv: failing("stderr_no_pool.txt")})
    with pytest.raises(NotFoundError, match="'tank' is not imported") as info:
        ZfsCli(runner).pool_info("tank")
    assert info.value.hint is not None
    assert "zpool import -N tank" in info.value.hint


def test_exists_distinguishes_missing_from_failing() -> None:
    runner = FakeRunner(
        {
            ("zfs", "list", "-H", "-o", "name", "rpool/ROOT/nope"): failing("stderr_not_exist.txt"),
            ("zfs", "list", "-H", "-o", "name", "tank/x"): failing("stderr_no_pool.txt"),
        }
    )
    cli = ZfsCli(runner)
    assert cli.exists("rpool/ROOT/debian") is True
    assert cli.exists("rpool/ROOT/nope") is False
    with pytest.raises(NotFoundError, match="no such pool"):
        cli.exists("tank/x")


def test_holds_returns_the_tags() -> None:
    snap = "rpool/ROOT/debian@install"
    runner = FakeRunner({("zfs", "holds", "-H", snap): Reply(data("zfs_holds.txt"))})
    assert ZfsCli(runner).holds(snap) == frozenset({"org.bootagent.factory", "keep"})
    assert ZfsCli(FakeRunner()).holds(snap) == frozenset()


def test_mounts_lists_zfs_only_and_unescapes(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(data("mounts.txt"))
    assert ZfsCli(FakeRunner(), mounts_path=str(mounts)).mounts() == {
        "/": "rpool/ROOT/debian",
        "/boot": "bpool/BOOT/debian",
        "/mnt/with space": "rpool/ROOT/trial",
        "/mnt/snap": "rpool/ROOT/debian@install",
    }


def test_unescape_helpers() -> None:
    assert unescape_mounts(r"/a\040b\011c\134d") == "/a b\tc\\d"
    assert unescape_diff(r"/x\0040y\0303\0251") == "/x yé"
    assert unescape_diff("/plain") == "/plain"


def test_diff_makes_paths_relative_to_the_mount_point(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("rpool/ROOT/trial /mnt/be zfs rw 0 0\n")
    argv = ("zfs", "diff", "-H", "rpool/ROOT/trial@a", "rpool/ROOT/trial")
    runner = FakeRunner({argv: Reply(data("zfs_diff.txt"))})
    entries = ZfsCli(runner, mounts_path=str(mounts)).diff("rpool/ROOT/trial@a", "rpool/ROOT/trial")
    assert runner.calls == [argv]
    assert entries == [
        DiffEntry(DiffChange.MODIFIED, "/"),
        DiffEntry(DiffChange.MODIFIED, "/etc"),
        DiffEntry(DiffChange.ADDED, "/etc/apt/sources.list.d/new repo.list"),
        DiffEntry(DiffChange.REMOVED, "/var/cache/apt/pkgcache.bin"),
        DiffEntry(DiffChange.RENAMED, "/etc/motd", "/etc/motd.d/café"),
        DiffEntry(DiffChange.MODIFIED, "/usr/lib/back\\slash"),
    ]


def test_diff_of_the_root_file_system_keeps_paths(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("rpool/ROOT/debian / zfs rw 0 0\n")
    argv = ("zfs", "diff", "-H", "rpool/ROOT/debian@a", "rpool/ROOT/debian@b")
    runner = FakeRunner({argv: Reply("+\t/etc/new\n")})
    cli = ZfsCli(runner, mounts_path=str(mounts))
    assert cli.diff("rpool/ROOT/debian@a", "rpool/ROOT/debian@b") == [DiffEntry(DiffChange.ADDED, "/etc/new")]


def test_diff_refuses_an_unmounted_file_system(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    runner = FakeRunner()
    with pytest.raises(RefusedError, match="rpool/ROOT/trial is not mounted"):
        ZfsCli(runner, mounts_path=str(mounts)).diff("rpool/ROOT/trial@a", "rpool/ROOT/trial")
    assert runner.calls == []


@pytest.mark.parametrize(
    ("stderr_file", "error", "text"),
    [
        ("stderr_not_exist.txt", NotFoundError, "dataset does not exist"),
        ("stderr_busy.txt", RefusedError, "dataset is busy"),
        ("stderr_clones.txt", RefusedError, "snapshot has dependent clones"),
        ("stderr_exists.txt", RefusedError, "dataset already exists"),
        ("stderr_unmounted_diff.txt", CommandError, "Cannot diff an unmounted snapshot"),
    ],
)
def test_destroy_failures_map_to_the_error_hierarchy(
    stderr_file: str, error: type[Exception], text: str
) -> None:
    runner = FakeRunner({("zfs", "destroy", "rpool/ROOT/trial"): failing(stderr_file)})
    with pytest.raises(error, match=text) as info:
        ZfsCli(runner).destroy(["rpool/ROOT/trial"])
    assert str(info.value).startswith("destroying rpool/ROOT/trial: ")


def test_clones_refusal_names_the_first_line_and_hints() -> None:
    runner = FakeRunner({("zfs", "destroy", "rpool/ROOT/debian@pre upgrade"): failing("stderr_clones.txt")})
    with pytest.raises(RefusedError) as info:
        ZfsCli(runner).destroy(["rpool/ROOT/debian@pre upgrade"])
    assert info.value.message == (
        "destroying rpool/ROOT/debian@pre upgrade: "
        "cannot destroy 'rpool/ROOT/debian@pre upgrade': snapshot has dependent clones"
    )
    assert info.value.hint == "destroy or promote the clones first"


def test_read_only_pool_is_a_read_only_error() -> None:
    argv = ("zfs", "snapshot", "rpool/ROOT/debian@x")
    runner = FakeRunner({argv: failing("stderr_readonly.txt")})
    with pytest.raises(ReadOnlyPoolError) as info:
        ZfsCli(runner).snapshot(["rpool/ROOT/debian@x"], {})
    assert info.value.errno == errno.EROFS


def test_destroy_order_puts_snapshots_first_and_children_before_parents() -> None:
    names = ["rpool/ROOT/a", "rpool/ROOT/a/var", "rpool/ROOT/a@s1", "rpool/ROOT/a/var@s1", "rpool/ROOT/a"]
    assert destroy_order(names) == [
        "rpool/ROOT/a@s1",
        "rpool/ROOT/a/var@s1",
        "rpool/ROOT/a/var",
        "rpool/ROOT/a",
    ]


def test_destroy_runs_one_command_per_name_in_order() -> None:
    runner = FakeRunner()
    ZfsCli(runner).destroy(["rpool/ROOT/a", "rpool/ROOT/a@s1"])
    assert runner.calls == [("zfs", "destroy", "rpool/ROOT/a@s1"), ("zfs", "destroy", "rpool/ROOT/a")]


def test_changing_commands_build_exact_argv() -> None:
    runner = FakeRunner()
    cli = ZfsCli(runner)
    props = {Prop.DESCRIPTION.value: "before upgrade", Prop.CREATED_BY.value: "manual"}
    cli.snapshot(["rpool/ROOT/a@s", "rpool/ROOT/b@s"], props)
    cli.clone("rpool/ROOT/c", "rpool/ROOT/a@s", {Prop.KEEP.value: "on"})
    cli.set_native("rpool/ROOT/c", {"canmount": "noauto", "mountpoint": "/"})
    cli.set_user("rpool/ROOT/c", {Prop.KERNEL.value: "6.1.0-27-amd64"})
    cli.inherit_user("rpool/ROOT/c", Prop.KEEP.value)
    cli.promote("rpool/ROOT/c")
    cli.rename("rpool/ROOT/c", "rpool/ROOT/d")
    cli.hold("rpool/ROOT/a@s", "org.bootagent.factory")
    cli.release("rpool/ROOT/a@s", "org.bootagent.factory")
    cli.mount("rpool/ROOT/d", "/mnt/d")
    cli.mount("rpool/ROOT/a@s", "/mnt/s")
    cli.unmount("/mnt/d")
    cli.set_bootfs("rpool", "rpool/ROOT/d")
    cli.import_pool("rpool", readonly=True, altroot="/mnt")
    cli.import_pool("bpool", readonly=False)
    cli.export_pool("bpool")
    assert runner.calls == [
        (
            *("zfs", "snapshot", "-o", "org.bootagent:description=before upgrade"),
            *("-o", "org.bootagent:created-by=manual", "rpool/ROOT/a@s", "rpool/ROOT/b@s"),
        ),
        ("zfs", "clone", "-o", "org.bootagent:keep=on", "rpool/ROOT/a@s", "rpool/ROOT/c"),
        ("zfs", "set", "canmount=noauto", "mountpoint=/", "rpool/ROOT/c"),
        ("zfs", "set", "org.bootagent:kernel=6.1.0-27-amd64", "rpool/ROOT/c"),
        ("zfs", "inherit", "org.bootagent:keep", "rpool/ROOT/c"),
        ("zfs", "promote", "rpool/ROOT/c"),
        ("zfs", "rename", "rpool/ROOT/c", "rpool/ROOT/d"),
        ("zfs", "hold", "org.bootagent.factory", "rpool/ROOT/a@s"),
        ("zfs", "release", "org.bootagent.factory", "rpool/ROOT/a@s"),
        ("mount", "-t", "zfs", "-o", "ro,zfsutil", "rpool/ROOT/d", "/mnt/d"),
        ("mount", "-t", "zfs", "-o", "ro", "rpool/ROOT/a@s", "/mnt/s"),
        ("umount", "/mnt/d"),
        ("zpool", "set", "bootfs=rpool/ROOT/d", "rpool"),
        ("zpool", "import", "-N", "-o", "readonly=on", "-R", "/mnt", "rpool"),
        ("zpool", "import", "-N", "bpool"),
        ("zpool", "export", "bpool"),
    ]


def test_import_of_a_missing_pool_is_not_found() -> None:
    runner = FakeRunner({("zpool", "import", "-N", "tank"): failing("stderr_import_none.txt")})
    with pytest.raises(NotFoundError, match="no such pool available"):
        ZfsCli(runner).import_pool("tank", readonly=False)


def test_zpool_status_healthy() -> None:
    runner = FakeRunner(
        {
            ("zpool", "status", "-x", "rpool"): Reply("pool 'rpool' is healthy\n"),
            ("zpool", "status", "-x", "bpool"): Reply("  pool: bpool\n state: DEGRADED\n"),
        }
    )
    cli = ZfsCli(runner)
    assert cli.zpool_status_healthy("rpool") is True
    assert cli.zpool_status_healthy("bpool") is False


SNAP_LIST = (
    *("zfs", "list", "-H", "-p", "-t", "snapshot", "-d", "1"),
    *("-o", "name,createtxg,userrefs,clones", "rpool/ROOT/debian"),
)


def test_rollback_destroying_newer_returns_the_newer_snapshots() -> None:
    runner = FakeRunner({SNAP_LIST: Reply(data("zfs_list_snapshots_debian.txt"))})
    destroyed = ZfsCli(runner).rollback_destroying_newer("rpool/ROOT/debian@pre upgrade")
    assert destroyed == ["rpool/ROOT/debian@weekly", "rpool/ROOT/debian@daily"]
    assert runner.calls == [SNAP_LIST, ("zfs", "rollback", "-r", "rpool/ROOT/debian@pre upgrade")]


def test_rollback_refuses_held_or_cloned_newer_snapshots_before_changing() -> None:
    runner = FakeRunner({SNAP_LIST: Reply(data("zfs_list_snapshots_debian.txt"))})
    with pytest.raises(RefusedError) as info:
        ZfsCli(runner).rollback_destroying_newer("rpool/ROOT/debian@install")
    assert "rpool/ROOT/debian@pre upgrade has clones (rpool/ROOT/trial)" in info.value.message
    assert runner.calls == [SNAP_LIST]


def test_rollback_to_a_missing_snapshot_is_not_found() -> None:
    runner = FakeRunner({SNAP_LIST: Reply(data("zfs_list_snapshots_debian.txt"))})
    with pytest.raises(NotFoundError):
        ZfsCli(runner).rollback_destroying_newer("rpool/ROOT/debian@nope")
    assert runner.calls == [SNAP_LIST]


def test_unknown_failure_is_a_command_error_with_the_stderr_line() -> None:
    runner = FakeRunner(
        {("zfs", "promote", "rpool/ROOT/x"): Reply(stderr="cannot promote: I/O error\n", returncode=1)}
    )
    with pytest.raises(CommandError) as info:
        ZfsCli(runner).promote("rpool/ROOT/x")
    assert info.value.message == "promoting rpool/ROOT/x: cannot promote: I/O error"
    assert info.value.returncode == 1


def test_a_name_zfs_refuses_is_an_invalid_name_and_names_nothing() -> None:
    """What OpenZFS prints for a character outside its rule (`zfs snapshot rpool/x@a+b`)."""
    refused = Reply(
        stderr="cannot create snapshot 'rpool/ROOT/beta@a+b': invalid character '+' in name\n", returncode=1
    )
    runner = FakeRunner(
        {
            ("zfs", "snapshot", "rpool/ROOT/beta@a+b"): refused,
            ("zfs", "list", "-H", "-o", "name", "rpool/ROOT/beta@a+b"): refused,
        }
    )
    with pytest.raises(InvalidNameError, match="invalid character") as info:
        ZfsCli(runner).snapshot(["rpool/ROOT/beta@a+b"], {})
    assert info.value.exit_code == 2
    assert ZfsCli(runner).exists("rpool/ROOT/beta@a+b") is False


def test_a_mounted_snapshot_is_listed_as_mounted(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("rpool/ROOT/beta@s1 /run/bootagent/mnt/beta@s1 zfs ro 0 0\n")
    runner = FakeRunner(
        {
            (*LIST_ARGV, "rpool/ROOT"): Reply(
                stdout="rpool/ROOT/beta@s1\tsnapshot\t1\t2\t3\t4\t-\t-\t-\t-\n"
            ),
            (*GET_ARGV, "rpool/ROOT"): Reply(stdout=""),
        }
    )
    [snap] = ZfsCli(runner, mounts_path=str(mounts)).list_tree("rpool/ROOT")
    assert snap.mounted
