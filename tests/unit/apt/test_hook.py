"""apt's hooks against the in-memory pool: one checkpoint per apt run, its description, its outcome."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bootagent.apt import hook as hook_module
from bootagent.apt.hook import AptHook, AptRun, RunState, current_run
from bootagent.apt.protocol import parse
from bootagent.bootmenu import MenuRefresh
from bootagent.bootstate import BootStore
from bootagent.cli.main import main
from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor, CreatedBy
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, reference_pool

NOW = 1_800_000_000.0
V3 = [
    "VERSION 3\n",
    "APT::Architecture=amd64\n",
    "\n",
    "hello - - none < 2.10-3 amd64 none /var/cache/apt/archives/hello_2.10-3_amd64.deb\n",
]


class Kernels:
    def __init__(self, *releases: str) -> None:
        self.releases = list(releases)

    def __call__(self) -> list[str]:
        return list(self.releases)


@pytest.fixture
def zfs() -> FakeZfs:
    return reference_pool()  # beta is mounted at /


@pytest.fixture
def envs(zfs: FakeZfs, tmp_path: Path) -> BootEnvironments:
    (tmp_path / "grub").mkdir()
    grubenv = GrubenvFile(tmp_path / "grub" / "grubenv")
    grubenv.update({"bootagent_default": "beta"})
    journal = Journal(tmp_path / "state", actor=Actor.AUTOMATIC, clock=lambda: NOW)
    return BootEnvironments(
        zfs,
        Config(pool="rpool", grubenv=str(grubenv.path)),
        "rpool",
        journal,
        BootStore(zfs, grubenv),
        clock=lambda: NOW,
    )


def apt_checkpoints(envs: BootEnvironments) -> list[Any]:
    beta = envs.inventory().find("beta")
    return [s for s in beta.snapshots if s.created_by is CreatedBy.PACKAGE_MANAGER]


def make(
    envs: BootEnvironments, tmp_path: Path, run: str = "100:5", kernels: Kernels | None = None
) -> AptHook:
    return AptHook(
        envs,
        AptRun(run, "apt-get install hello"),
        kernels=kernels or Kernels("6.1.0-30-amd64"),
        state=tmp_path / "run" / "apt-run.json",
    )


def test_one_checkpoint_per_apt_run_described_by_the_command_then_the_packages(
    envs: BootEnvironments, tmp_path: Path
) -> None:
    first = make(envs, tmp_path).pre_invoke()
    assert first.checkpoint is not None
    assert first.checkpoint.startswith("beta@apt-")
    again = make(envs, tmp_path).pre_invoke()  # dpkg invoked again in the same apt run
    assert again.checkpoint == first.checkpoint
    [snap] = apt_checkpoints(envs)
    assert snap.description == "apt: apt-get install hello"
    make(envs, tmp_path).packages(parse(V3))
    [snap] = apt_checkpoints(envs)
    assert snap.description == "apt: install hello 2.10-3"
    entries = [(e.action, e.outcome) for e in envs.journal.entries(20)]
    assert ("checkpoint", Outcome.OK) in entries
    assert ("describe", Outcome.OK) in entries


def test_the_package_list_first_takes_the_checkpoint_itself(envs: BootEnvironments, tmp_path: Path) -> None:
    hook = make(envs, tmp_path)
    taken = hook.packages(parse(V3))
    assert hook.pre_invoke().checkpoint == taken.checkpoint
    [snap] = apt_checkpoints(envs)
    assert snap.description == "apt: install hello 2.10-3"


def test_another_apt_run_takes_another_checkpoint_even_in_the_same_second(
    envs: BootEnvironments, tmp_path: Path
) -> None:
    first = make(envs, tmp_path, run="100:5").pre_invoke()
    second = make(envs, tmp_path, run="200:9").pre_invoke()  # the clock has not moved
    assert [c.name for c in apt_checkpoints(envs)] == ["apt-20270115-080000", "apt-20270115-080000-2"]
    assert (first.checkpoint, second.checkpoint) == ("beta@apt-20270115-080000", "beta@apt-20270115-080000-2")


def test_the_outcome_and_a_new_kernel_are_recorded(envs: BootEnvironments, tmp_path: Path) -> None:
    kernels = Kernels("6.1.0-30-amd64")
    hook = make(envs, tmp_path, kernels=kernels)
    cp = hook.pre_invoke().checkpoint
    kernels.releases += ["6.1.0-31-amd64", "6.1.0-32-amd64"]  # dpkg installed two
    done = hook.post_invoke("")
    assert done.kernel == "6.1.0-32-amd64"
    assert envs.inventory().find("beta").kernel == "6.1.0-32-amd64"
    assert "every package configured" in done.text
    entry = envs.journal.entries(1)[0]
    assert (entry.action, entry.target, entry.outcome) == ("package-manager", cp, Outcome.OK)
    state = RunState.load(tmp_path / "run" / "apt-run.json")
    assert state is not None
    assert state.finished


def test_a_run_that_left_packages_half_installed_says_how_to_go_back(
    envs: BootEnvironments, tmp_path: Path
) -> None:
    hook = make(envs, tmp_path)
    cp = hook.pre_invoke().checkpoint
    done = hook.post_invoke("The following packages are only half configured:\n hello\n")
    assert done.kernel is None
    assert "half-installed" in done.text
    assert f"bootagent rollback --to {cp}" in done.text
    assert envs.inventory().find("beta").kernel == "6.1.0-30-amd64"  # unchanged
    assert make(envs, tmp_path, run="300:1").post_invoke("").checkpoint is None  # another run took none


def test_a_long_lived_front_end_gets_a_checkpoint_per_transaction(
    envs: BootEnvironments, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    clock = [NOW]
    monkeypatch.setattr(envs, "clock", lambda: clock[0])
    hook = make(envs, tmp_path, run="700:1")  # the same process (packagekitd) all along
    first = hook.pre_invoke().checkpoint
    assert hook.pre_invoke().checkpoint == first  # dpkg again within the same transaction
    hook.post_invoke("")
    assert hook.pre_invoke().checkpoint == first  # right after it: still that transaction
    state = tmp_path / "run" / "apt-run.json"
    old = state.stat().st_mtime - hook_module.SAME_RUN - 1
    os.utime(state, (old, old))
    clock[0] += 600
    second = hook.pre_invoke().checkpoint
    assert second not in (None, first)
    assert len(apt_checkpoints(envs)) == 2


def test_a_state_file_that_is_damaged_is_no_state(envs: BootEnvironments, tmp_path: Path) -> None:
    path = tmp_path / "run" / "apt-run.json"
    path.parent.mkdir()
    path.write_text("{not json")
    assert RunState.load(path) is None
    assert make(envs, tmp_path).pre_invoke().checkpoint is not None


def test_the_apt_run_is_the_nearest_ancestor_that_is_no_shell(tmp_path: Path) -> None:
    def proc(pid: int, comm: str, ppid: int, start: int, cmdline: bytes) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        fields = ["S", str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 10
        (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields))
        (d / "cmdline").write_bytes(cmdline)

    # recorded with apt 2.6: Pre-Invoke and Post-Invoke run from a forked copy of apt-get (a new pid each
    # time), Pre-Install-Pkgs from apt-get itself; all three are one run
    proc(150, "bash", 1, 10, b"-bash\0")
    proc(200, "apt-get", 150, 55, b"apt-get\0install\0-y\0hello\0")
    proc(250, "apt-get", 200, 60, b"apt-get\0install\0-y\0hello\0")  # the fork for Pre-Invoke
    proc(300, "sh", 250, 77, b"sh\0-c\0/usr/sbin/bootagent apt-hook pre-invoke\0")
    proc(310, "sh", 200, 78, b"/bin/sh\0-c\0/usr/sbin/bootagent apt-hook packages\0")
    proc(260, "apt-get", 200, 90, b"apt-get\0install\0-y\0hello\0")  # the fork for Post-Invoke
    proc(320, "sh", 260, 91, b"sh\0-c\0/usr/sbin/bootagent apt-hook post-invoke\0")
    for hook_shell in (300, 310, 320):
        assert current_run(tmp_path, start=hook_shell) == AptRun("200:55", "apt-get install -y hello")
    proc(400, "my (odd) apt", 1, 9, b"")
    assert current_run(tmp_path, start=400) == AptRun("400:9", "my (odd) apt")


# --- through the command line -------------------------------------------------------------------------
class FakeMenu:
    def __init__(self) -> None:
        self.refreshed = 0

    def refresh(self) -> MenuRefresh:
        self.refreshed += 1
        return MenuRefresh(True, None)


@pytest.fixture
def cli(zfs: FakeZfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "grub").mkdir(exist_ok=True)
    GrubenvFile(tmp_path / "grub" / "grubenv").update({"bootagent_default": "beta"})
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    zfs.mounted[str(state)] = "rpool/bootagent"
    cfg = tmp_path / "bootagent.yaml"
    cfg.write_text(f"pool: rpool\ngrubenv: {tmp_path}/grub/grubenv\n")
    monkeypatch.setattr(hook_module, "STATE", tmp_path / "run" / "apt-run.json")
    monkeypatch.setattr(hook_module, "in_chroot", lambda: False)
    monkeypatch.setattr(hook_module, "current_run", lambda: AptRun("42:7", "apt install hello"))
    kernels = Kernels("6.1.0-30-amd64")
    monkeypatch.setattr(hook_module, "installed_kernels", kernels)
    menu = FakeMenu()

    def dpkg_audit(argv: Sequence[str], **_: Any) -> CommandResult:
        assert list(argv) == ["dpkg", "--audit"]
        return CommandResult(tuple(argv), 0, "", "")

    def invoke(*argv: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        err = io.StringIO()
        code = main(
            ["--config", str(cfg), *argv],
            backend=lambda: zfs,
            menu=lambda _config: menu,
            stdout=io.StringIO(),
            stderr=err,
            runner=dpkg_audit,
        )
        return code, err.getvalue()

    invoke.config = cfg  # type: ignore[attr-defined]
    invoke.kernels = kernels  # type: ignore[attr-defined]
    invoke.menu = menu  # type: ignore[attr-defined]
    return invoke


def test_an_apt_run_through_the_command_line(cli: Any, zfs: FakeZfs) -> None:
    code, err = cli("apt-hook", "pre-invoke")
    assert code == 0, err
    assert "checkpoint beta@apt-" in err
    code, err = cli("apt-hook", "packages", stdin="".join(V3))
    assert code == 0, err
    assert "install hello 2.10-3" in err
    cli.kernels.releases.append("6.1.0-31-amd64")
    code, err = cli("apt-hook", "post-invoke")
    assert code == 0, err
    assert cli.menu.refreshed == 1  # the environment's kernel changed: GRUB's menu again
    snaps = [n for n in zfs.nodes if n.startswith("rpool/ROOT/beta@apt-")]
    assert len(snaps) == 1
    assert zfs.nodes[snaps[0]].user_props["org.bootagent:description"] == "apt: install hello 2.10-3"
    assert zfs.nodes["rpool/ROOT/beta"].user_props["org.bootagent:kernel"] == "6.1.0-31-amd64"


def test_a_failing_checkpoint_lets_apt_go_on_unless_the_config_says_stop(cli: Any, zfs: FakeZfs) -> None:
    from bootagent.errors import ZfsError

    zfs.fail_next["snapshot"] = ZfsError("out of space", hint="free some")
    code, err = cli("apt-hook", "pre-invoke")
    assert code == 0
    assert "warning: apt hook pre-invoke: out of space" in err
    assert "apt goes on without a checkpoint" in err
    cli.config.write_text(cli.config.read_text() + "apt:\n  stop_on_failure: true\n")
    zfs.fail_next["snapshot"] = ZfsError("out of space")
    code, err = cli("apt-hook", "pre-invoke")
    assert code == 5
    assert "apt stops here" in err


def test_nothing_happens_off_a_boot_environment_or_when_turned_off(cli: Any, zfs: FakeZfs) -> None:
    before = set(zfs.nodes)
    cli.config.write_text(cli.config.read_text() + "apt:\n  checkpoint: false\n")
    assert cli("apt-hook", "pre-invoke") == (0, "")
    cli.config.write_text(cli.config.read_text().replace("checkpoint: false", "checkpoint: true"))
    zfs.mounted["/"] = "rpool/data"  # on ZFS, but no boot environment
    assert cli("apt-hook", "pre-invoke") == (0, "")
    del zfs.mounted["/"]  # not on ZFS at all
    assert cli("apt-hook", "packages", stdin="".join(V3)) == (0, "")
    assert set(zfs.nodes) == before


def test_a_broken_config_warns_and_the_defaults_take_the_checkpoint(cli: Any, zfs: FakeZfs) -> None:
    cli.config.write_text("pool: [unclosed\n")
    code, err = cli("apt-hook", "pre-invoke")
    assert code == 0
    assert f"warning: configuration: {cli.config}" in err
    assert "(the default is used)" in err
    assert [n for n in zfs.nodes if n.startswith("rpool/ROOT/beta@apt-")]


def test_in_a_chroot_nothing_happens(cli: Any, zfs: FakeZfs, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(zfs.nodes)
    monkeypatch.setattr(hook_module, "in_chroot", lambda: True)
    assert cli("apt-hook", "pre-invoke") == (0, "")
    assert set(zfs.nodes) == before


def test_a_chroot_is_told_by_the_root_of_process_1(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "root").symlink_to("/")
    assert not hook_module.in_chroot(str(tmp_path))
    (tmp_path / "1" / "root").unlink()
    (tmp_path / "1" / "root").symlink_to(tmp_path)
    assert hook_module.in_chroot(str(tmp_path))
    assert not hook_module.in_chroot(str(tmp_path / "nowhere"))  # unknown: not a chroot


# --- the apt configuration's hook lines, as apt runs them (sh -c) ---------------------------------------
def _hook_lines() -> dict[str, str]:
    import re

    conf = (Path(__file__).resolve().parents[3] / "apt" / "80bootagent").read_text()
    lines = dict(re.findall(r'^DPkg::(Pre-Invoke|Pre-Install-Pkgs|Post-Invoke) \{ "(.*)"; \};$', conf, re.M))
    assert set(lines) == {"Pre-Invoke", "Pre-Install-Pkgs", "Post-Invoke"}
    version = re.search(r'^DPkg::Tools::Options::(\S+)::Version "3";$', conf, re.M)
    assert version is not None
    assert lines["Pre-Install-Pkgs"].split()[0] == version.group(1)  # apt keys the option on the first word
    return {k: v.replace('\\"', '"') for k, v in lines.items()}


@pytest.mark.subprocess
@pytest.mark.parametrize("hook", ["Pre-Invoke", "Pre-Install-Pkgs", "Post-Invoke"])
def test_the_hook_lines_stop_apt_only_when_bootagent_says_so(hook: str, tmp_path: Path) -> None:
    import subprocess

    line = _hook_lines()[hook]

    def run_with(exit_code: int | None) -> int:
        stub = tmp_path / "bootagent"
        stub.unlink(missing_ok=True)
        if exit_code is not None:
            stub.write_text(f"#!/bin/sh\ncat >/dev/null\nexit {exit_code}\n")
            stub.chmod(0o755)
        command = line.replace("/usr/sbin/bootagent", str(stub))
        done = subprocess.run(
            ["sh", "-c", command], input="VERSION 3\n\n", capture_output=True, text=True, check=False
        )
        return done.returncode

    assert run_with(0) == 0  # a checkpoint, or a warning: apt goes on
    assert run_with(5) != 0  # apt.stop_on_failure: apt stops
    assert run_with(None) == 0  # the package removed, this file left behind: apt goes on
