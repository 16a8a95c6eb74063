"""The early-boot session (bootagent/boot/agent.py): read-only until a change, read-write only for it, the
pool exported before the hand-over, ROOT= quoted for /init, kexec with the kernel's own quoting, and a
one-shot GRUB boot when kexec fails. The commands are scripted; the pool is the in-memory fake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootagent.boot.agent import EarlyBootPaths, EarlyBootSession, read_shell_conf
from bootagent.boot.cmdline import parse_cmdline
from bootagent.boot.session import BootDecision
from bootagent.config import Config
from bootagent.errors import CommandError, InvalidNameError, RefusedError
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor
from bootagent.runner import DEFAULT_TIMEOUT, CommandResult
from tests.fakes import FakeZfs, howto_pools, reference_pool

RUNNING = "6.1.0-30-amd64"
CMDLINE = (
    'BOOT_IMAGE=/ROOT/beta@/boot/vmlinuz root=ZFS=rpool/ROOT/beta console=ttyS0,115200 "x=a b" bootagent=menu'
)


@dataclass
class Script:
    """The commands the session runs, answered: `zpool list POOL` fails until it is imported."""

    imported: bool = False
    fail: dict[str, CommandError] = field(default_factory=dict)  # first word after the program -> error
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
        word = " ".join(key[:2])
        if word in self.fail:
            raise self.fail[word]
        code = 0
        if key[:2] == ("zpool", "list"):
            code = 0 if self.imported else 1
        elif key[:2] == ("zpool", "import"):
            self.imported = True
        elif key[:2] == ("zpool", "export"):
            self.imported = False
        if check and code:
            raise CommandError(key, returncode=code, stderr="cannot open 'rpool': no such pool")
        return CommandResult(key, code, "", "")

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[: len(prefix)] == prefix]


def kernel_tree(root: Path, release: str, *, initrd: bool = True) -> None:
    (root / "lib" / "modules" / release).mkdir(parents=True, exist_ok=True)
    (root / "boot").mkdir(parents=True, exist_ok=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(b"kernel")
    if initrd:
        (root / "boot" / f"initrd.img-{release}").write_bytes(b"initrd")


@pytest.fixture
def zfs() -> FakeZfs:
    z = reference_pool()
    del z.mounted["/"]  # early boot: the root is not mounted yet
    z.readonly = True
    return z


@pytest.fixture
def paths(tmp_path: Path) -> EarlyBootPaths:
    (tmp_path / "conf").mkdir()
    return EarlyBootPaths(
        run_dir=str(tmp_path / "run"),
        param_conf=str(tmp_path / "conf" / "param.conf"),
        initramfs_conf=str(tmp_path / "initramfs.conf"),
    )


def session(zfs: FakeZfs, paths: EarlyBootPaths, script: Script, cmdline: str = CMDLINE) -> EarlyBootSession:
    s = EarlyBootSession(
        parse_cmdline(cmdline),
        Config(),
        "rpool",
        runner=script,
        paths=paths,
        running_release=RUNNING,
        zfs=zfs,
    )
    for be in ("alpha", "beta", "gamma"):  # what the read-only peek mount would show
        kernel_tree(
            Path(paths.peek_mount) / f"rpool_ROOT_{be}", RUNNING if be != "gamma" else "6.12.0-1-amd64"
        )
    return s


def test_looking_imports_read_only_without_mounting_anything(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    script = Script()
    s = session(zfs, paths, script)
    s.open_readonly()
    assert script.ran("zpool", "import") == [("zpool", "import", "-N", "-o", "readonly=on", "rpool")]
    assert script.ran("mount") == [
        ("mount", "-t", "zfs", "-o", "ro,zfsutil", "rpool/bootagent", paths.state_mount)
    ]
    assert [e.name for e in s.inventory().environments] == ["alpha", "beta", "gamma"]
    assert s.default_environment() == "beta"  # root= on the command line
    assert not s.writable
    assert zfs.changes() == []


def test_an_already_imported_pool_is_not_imported_again(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    script = Script(imported=True)
    zfs.readonly = False
    s = session(zfs, paths, script)
    s.open_readonly()
    assert script.ran("zpool", "import") == []
    assert s.writable


def test_booting_hands_over_a_quoted_root_with_the_pool_exported(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    zfs.add_fs("rpool/ROOT/a:b", mountpoint="/", canmount="noauto")
    script = Script()
    s = session(zfs, paths, script)
    kernel_tree(Path(paths.peek_mount) / "rpool_ROOT_a:b", RUNNING)
    s.open_readonly()
    decision = s.boot("a:b")
    assert decision == BootDecision("a:b", "rpool/ROOT/a:b", RUNNING, needs_own_kernel=False)
    s.hand_over(decision)
    assert Path(paths.param_conf).read_text() == "ROOT=ZFS=rpool/ROOT/a:b\n"
    assert script.calls[-1] == ("zpool", "export", "rpool")
    assert not script.imported
    assert all(c[0] != "mount" or c[-1] not in s._mounted for c in script.calls)
    assert read_shell_conf(paths.param_conf) == {"ROOT": "ZFS=rpool/ROOT/a:b"}


def test_a_hand_made_name_is_refused_and_nothing_is_handed_over(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    """The symptom: "booting my test" handed over ROOT=ZFS=rpool/ROOT/my; Debian's script booted bootfs."""
    zfs.add_fs("rpool/ROOT/my test", mountpoint="/", canmount="noauto")
    s = session(zfs, paths, Script())
    s.open_readonly()
    assert "my test" in [e.name for e in s.inventory().environments]  # listed
    with pytest.raises(InvalidNameError, match="contains a space"):
        s.boot("my test")
    with pytest.raises(RefusedError, match="not the dataset"):
        s.hand_over(BootDecision("beta", "rpool/ROOT/my test", RUNNING, needs_own_kernel=False))
    assert not Path(paths.param_conf).exists()


def test_the_default_is_never_a_name_that_cannot_be_handed_over(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    zfs.add_fs("rpool/ROOT/my test", mountpoint="/", canmount="noauto")
    zfs.bootfs = "rpool/ROOT/my test"
    s = session(zfs, paths, Script(), cmdline="root=ZFS=AUTO bootagent=menu")
    s.open_readonly()
    assert s.default_environment() is None  # no countdown towards it; the operator chooses


def test_a_change_reimports_read_write_and_resolves_what_a_cut_left(
    zfs: FakeZfs, paths: EarlyBootPaths, tmp_path: Path
) -> None:
    script = Script()
    s = session(zfs, paths, script)
    s.open_readonly()
    # an operation a power cut left pending, in the journal on the state dataset
    Journal(paths.state_mount, actor=Actor.CLI).record(
        "checkpoint", "beta@cut", Outcome.INTENT, data={"snapshot": "rpool/ROOT/beta@cut"}
    )
    zfs.readonly = False
    steps: list[str] = []
    result = s.rollback("beta", steps=1, destructive=False, progress=steps.append)
    assert result.environment == "beta-s3"
    imports = script.ran("zpool", "import")
    assert imports[-1] == ("zpool", "import", "-N", "rpool")  # read-write, only now
    assert script.ran("zpool", "export")  # the read-only import was closed first
    assert "re-importing pool rpool read-write" in steps
    entries = Journal(paths.state_mount, actor=Actor.CLI).entries()
    assert [(e.action, e.outcome) for e in entries if e.target == "beta@cut"] == [
        ("checkpoint", Outcome.INTENT),
        ("checkpoint", Outcome.FAILED),
    ]


def test_another_kernel_is_kexeced_with_the_kernels_quoting_and_the_chosen_root_last(
    zfs: FakeZfs, paths: EarlyBootPaths
) -> None:
    script = Script()
    s = session(zfs, paths, script)
    s.open_readonly()
    decision = s.boot("gamma")
    assert decision.needs_own_kernel
    s.boot_own_kernel(decision)
    [load] = script.ran("kexec", "-l")
    tree = Path(paths.peek_mount) / "rpool_ROOT_gamma"
    assert load[2] == str(tree / "boot" / "vmlinuz-6.12.0-1-amd64")
    assert load[3] == f"--initrd={tree / 'boot' / 'initrd.img-6.12.0-1-amd64'}"
    assert (
        load[4] == '--command-line=console=ttyS0,115200 x="a b" root=ZFS=rpool/ROOT/gamma bootagent.kexec=1'
    )
    assert script.calls[-1] == ("kexec", "-e")
    assert ("zpool", "export", "rpool") in script.calls


def test_a_failed_kexec_falls_back_to_a_one_shot_grub_boot(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    script = Script(fail={"kexec -l": CommandError(["kexec", "-l"], returncode=1, stderr="kexec: busy")})
    s = session(zfs, paths, script)
    Path(paths.grub_mount).mkdir(parents=True)
    Path(paths.initramfs_conf).write_text("GRUBENV_UUID=1234-abcd\nGRUBENV_FILE=grubenv\n")
    s.conf = read_shell_conf(paths.initramfs_conf)
    s.open_readonly()
    zfs.readonly = False
    s.boot_own_kernel(s.boot("gamma"))
    assert ("mount", "-t", "ext4,vfat", "UUID=1234-abcd", paths.grub_mount) in script.calls
    assert (Path(paths.grub_mount) / "grubenv").read_bytes().count(b"bootagent_once=gamma\n") == 1
    assert script.calls[-1] == ("reboot", "-f")


def test_close_exports_even_when_an_unmount_fails(zfs: FakeZfs, paths: EarlyBootPaths) -> None:
    script = Script()
    s = session(zfs, paths, script)
    s.open_readonly()

    def failing_umount(argv: Sequence[str], **kw: object) -> CommandResult:
        if argv[0] == "umount":
            script.calls.append(tuple(argv))
            return CommandResult(tuple(argv), 32, "", "umount: target is busy")
        return script(argv)

    s.runner = failing_umount
    s.cli = type(s.cli)(failing_umount)
    s.close()
    assert script.calls[-1] == ("zpool", "export", "rpool")
    assert not s.imported


# --- the HOWTO's two pools --------------------------------------------------------------------------------
@dataclass
class Pools(Script):
    """`zpool list/import/export POOL` per pool (the boot pool beside the root pool)."""

    pools: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)  # pools that cannot be imported

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
        if key[:1] != ("zpool",) or key[1] not in ("list", "import", "export"):
            return super().__call__(argv, input=input, timeout=timeout, check=check, env=env)
        self.calls.append(key)
        pool, code = key[-1], 0
        if key[1] == "list":
            code = 0 if pool in self.pools else 1
        elif key[1] == "import":
            code = 1 if pool in self.missing else 0
            if not code:
                self.pools.add(pool)
        else:
            self.pools.discard(pool)
        if check and code:
            raise CommandError(key, returncode=code, stderr=f"cannot import '{pool}': no such pool available")
        return CommandResult(key, code, "", "")


@pytest.fixture
def howto(paths: EarlyBootPaths) -> FakeZfs:
    z = howto_pools()
    del z.mounted["/"], z.mounted["/boot"]
    z.readonly = True
    Path(paths.initramfs_conf).write_text("BOOT_POOL=bpool\n")  # what bootagent-mkinitrd recorded
    return z


def test_the_boot_pool_is_imported_read_only_beside_the_root_pool(
    howto: FakeZfs, paths: EarlyBootPaths
) -> None:
    script = Pools()
    s = session(howto, paths, script)
    s.open_readonly()
    assert script.ran("zpool", "import") == [
        ("zpool", "import", "-N", "-o", "readonly=on", "rpool"),
        ("zpool", "import", "-N", "-o", "readonly=on", "bpool"),
    ]
    assert {e.boot_dataset for e in s.inventory().environments} == {
        "bpool/BOOT/alpha",
        "bpool/BOOT/beta",
        "bpool/BOOT/gamma",
    }
    s.close()
    assert script.ran("zpool", "export") == [("zpool", "export", "bpool"), ("zpool", "export", "rpool")]


def test_the_kernel_of_a_pair_is_read_with_its_boot_half_inside(
    howto: FakeZfs, paths: EarlyBootPaths
) -> None:
    script = Pools()
    s = session(howto, paths, script)
    s.open_readonly()
    decision = s.boot("alpha")
    assert (decision.dataset, decision.kernel) == ("rpool/ROOT/alpha", RUNNING)
    tree = Path(paths.peek_mount) / "rpool_ROOT_alpha"
    assert script.ran("mount", "-t", "zfs", "-o", "ro,zfsutil", "bpool/BOOT/alpha") == [
        ("mount", "-t", "zfs", "-o", "ro,zfsutil", "bpool/BOOT/alpha", str(tree / "boot"))
    ]
    assert script.ran("umount")[-2:] == [("umount", str(tree / "boot")), ("umount", str(tree))]


def test_half_an_environment_is_never_booted(howto: FakeZfs, paths: EarlyBootPaths) -> None:
    for name in [n for n in howto.nodes if n.startswith("bpool/BOOT/gamma")]:
        del howto.nodes[name]
    s = session(howto, paths, Pools())
    s.open_readonly()
    with pytest.raises(
        RefusedError, match="gamma is half a boot environment: its /boot half bpool/BOOT/gamma"
    ):
        s.boot("gamma")


def test_a_boot_pool_that_cannot_be_imported_boots_nothing_half_way(
    howto: FakeZfs, paths: EarlyBootPaths, caplog: pytest.LogCaptureFixture
) -> None:
    howto.extra_pools.remove("bpool")  # not imported: nothing of it can be listed
    for name in [n for n in howto.nodes if n.startswith("bpool")]:
        del howto.nodes[name]
    s = session(howto, paths, Pools(missing={"bpool"}))
    s.open_readonly()
    assert "cannot import the boot pool bpool" in caplog.text
    with pytest.raises(
        RefusedError, match="half a boot environment: the boot pool's bpool/BOOT cannot be read"
    ):
        s.boot("beta")
