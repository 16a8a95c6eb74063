"""boot-start, health and bless on a running system: the counter re-armed on every boot, a failed required
check that fails the boot, and a good boot that ends a ladder and says so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from bootagent.bootstate import BootStore
from bootagent.config import CheckFailure, Config, Recovery
from bootagent.environments import BootEnvironments
from bootagent.grubenv import DEFAULT_VAR, GrubenvFile
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor, Prop
from bootagent.recovery import lifecycle
from bootagent.recovery.counter import TRIES_VAR
from bootagent.recovery.ladder import Attempt, LadderState
from bootagent.recovery.lifecycle import HealthFailed, RunningSystem, Watchdog
from bootagent.recovery.store import BootRecord, RecoveryStore
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, reference_pool


@dataclass
class Calls:
    argv: list[tuple[str, ...]] = field(default_factory=list)
    dog: list[str] = field(default_factory=list)
    exit_codes: dict[str, int] = field(default_factory=dict)

    def runner(self, argv: Sequence[str], **_: Any) -> CommandResult:
        self.argv.append(tuple(argv))
        code = self.exit_codes.get(Path(argv[0]).name, 0)
        return CommandResult(tuple(argv), code, f"{Path(argv[0]).name} says hello\n", "")


def system(tmp_path: Path, zfs: FakeZfs | None = None, **recovery: Any) -> tuple[RunningSystem, Calls]:
    zfs = zfs or reference_pool()
    config = Config(pool="rpool", recovery=Recovery(**recovery))
    journal = Journal(tmp_path / "state", actor=Actor.AUTOMATIC)
    boot = BootStore(zfs, GrubenvFile(tmp_path / "grub" / "grubenv"), mounts_path=str(tmp_path / "no-mounts"))
    (tmp_path / "grub").mkdir(exist_ok=True)
    envs = BootEnvironments(zfs, config, "rpool", journal, boot, clock=lambda: 5000.0)
    calls = Calls()

    def arm(seconds: int) -> str:
        calls.dog.append(f"arm {seconds}")
        return f"armed {seconds}"

    def disarm() -> str:
        calls.dog.append("disarm")
        return "stopped"

    dog = Watchdog(arm=arm, disarm=disarm, present=lambda: True)
    checks = tmp_path / "health.d"
    sys_ = RunningSystem(
        config=config,
        pool="rpool",
        envs=envs,
        boot=boot,
        journal=journal,
        store=RecoveryStore(tmp_path / "state"),
        runner=calls.runner,
        watchdog=dog,
        checks_dir=str(checks),
        motd=str(tmp_path / "motd.d" / "bootagent"),
        boot_id=lambda: "boot-1",
        clock=lambda: 5000.0,
    )
    return sys_, calls


def check(tmp_path: Path, need: str, name: str) -> None:
    path = tmp_path / "health.d" / need / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_boot_start_keeps_a_sound_counter_and_arms_the_watchdog(tmp_path: Path) -> None:
    sys_, calls = system(tmp_path, boot_timeout=300)
    sys_.boot.grubenv.update({TRIES_VAR: "2", DEFAULT_VAR: "beta"})
    record = lifecycle.boot_start(sys_)
    assert (record.environment, record.tries, record.repaired) == ("beta", 2, "")
    assert sys_.boot.grubenv.read().get(TRIES_VAR) == "2"  # GRUB's count is left alone
    assert calls.dog == ["arm 300"]
    assert sys_.store.boot() == record


@pytest.mark.parametrize(
    "damage",
    ["missing", "garbled", "damaged"],
)
def test_boot_start_writes_a_lost_counter_again_with_this_boot_counted(tmp_path: Path, damage: str) -> None:
    sys_, calls = system(tmp_path, boot_timeout=0)
    path = sys_.boot.grubenv.path
    if damage == "garbled":
        sys_.boot.grubenv.update({TRIES_VAR: "lots", "saved_entry": "keep me"})
    elif damage == "damaged":
        path.write_bytes(b"# GRUB Environment Block\nbootagent_tries=2\n" + b"\x00" * 100)
    record = lifecycle.boot_start(sys_)
    assert record.tries == 1
    assert record.repaired
    env = sys_.boot.grubenv.read()
    assert env.get(TRIES_VAR) == "1"
    assert not env.damaged
    if damage == "garbled":
        assert env.get("saved_entry") == "keep me"  # nothing else in the block is lost
    else:
        assert env.get(DEFAULT_VAR) == "beta"  # GRUB's default comes back from the pool's bootfs
    if damage == "damaged":
        assert list(path.parent.glob("grubenv.damaged-*"))
    assert any(e.action == "boot-counter" for e in sys_.journal.entries(10))
    assert calls.dog == []  # boot_timeout 0: no watchdog


def test_a_failed_required_check_fails_the_boot_records_why_and_reboots(tmp_path: Path) -> None:
    sys_, calls = system(tmp_path)
    lifecycle.boot_start(sys_)
    check(tmp_path, "required", "web.sh")
    calls.exit_codes["web.sh"] = 1
    with pytest.raises(HealthFailed) as err:
        lifecycle.run_health(sys_)
    assert err.value.exit_code == 8
    assert "required check web.sh failed" in err.value.message
    assert ("systemctl", "reboot", "--no-block") in calls.argv
    record = sys_.store.boot()
    assert record is not None
    assert record.health == "failed"
    assert record.failed_required == ("web.sh",)
    # the bless unit would not run (boot-complete.target failed); run by hand it refuses too
    with pytest.raises(Exception, match="not blessed"):
        lifecycle.bless(sys_)


def test_wait_instead_of_reboot_when_configured(tmp_path: Path) -> None:
    sys_, calls = system(tmp_path, required_check_failure=CheckFailure.WAIT)
    check(tmp_path, "required", "web.sh")
    calls.exit_codes["web.sh"] = 1
    with pytest.raises(HealthFailed):
        lifecycle.run_health(sys_)
    assert not [a for a in calls.argv if a[0] == "systemctl"]


def test_a_failed_wanted_check_is_recorded_and_the_boot_stays_good(tmp_path: Path) -> None:
    sys_, calls = system(tmp_path)
    check(tmp_path, "wanted", "ntp.sh")
    calls.exit_codes["ntp.sh"] = 1
    report = lifecycle.run_health(sys_)
    assert report.passed
    assert report.failed_wanted == ("ntp.sh",)
    assert lifecycle.bless(sys_).environment == "beta"


def test_bless_clears_the_counter_marks_good_and_stops_the_watchdog(tmp_path: Path) -> None:
    sys_, calls = system(tmp_path)
    sys_.boot.grubenv.update({TRIES_VAR: "2", DEFAULT_VAR: "beta"})
    done = lifecycle.bless(sys_)
    assert done.recovered is None
    assert not done.made_default
    assert sys_.boot.grubenv.read().get(TRIES_VAR) == "0"
    assert sys_.envs.inventory().find("beta").last_good == 5000
    assert calls.dog == ["disarm"]
    assert not (tmp_path / "motd.d" / "bootagent").exists()
    actions = [(e.action, e.outcome.value) for e in sys_.journal.entries(10)]
    assert ("bless", "ok") in actions
    assert ("mark-good", "ok") in actions


def test_bless_lists_the_pool_once(tmp_path: Path, mocker: MockerFixture) -> None:
    """Every good boot pays for bless: one listing serves its mark-good and its own step."""
    zfs = reference_pool()
    sys_, _calls = system(tmp_path, zfs)
    listing = mocker.spy(zfs, "list_tree")
    assert lifecycle.bless(sys_).environment == "beta"
    assert listing.call_count == 1
    assert sys_.envs.inventory().find("beta").last_good == 5000


def test_bless_after_a_fallback_makes_it_the_default_and_tells_everyone(tmp_path: Path) -> None:
    zfs = reference_pool()
    zfs.bootfs = "rpool/ROOT/gamma"  # the failing default
    zfs.set_user("rpool/ROOT/gamma", {Prop.FAILED.value: "4000: required check web.sh failed"})
    zfs.set_user("rpool/ROOT/beta", {Prop.FAILED.value: "3000: an old mark"})
    sys_, calls = system(tmp_path, zfs)
    sys_.boot.grubenv.update({TRIES_VAR: "3", DEFAULT_VAR: "gamma"})
    sys_.store.save_ladder(
        LadderState("gamma", 3, "required check web.sh failed", (Attempt("beta"),), started=4000)
    )
    done = lifecycle.bless(sys_)
    message = "this boot is a fallback to beta after 3 failed boots of gamma (required check web.sh failed)"
    assert done.recovered is not None
    assert done.recovered.describe() == message
    assert done.made_default
    env = sys_.boot.grubenv.read()
    assert (env.get(TRIES_VAR), env.get(DEFAULT_VAR)) == ("0", "beta")
    assert zfs.bootfs == "rpool/ROOT/beta"
    assert sys_.store.ladder() == LadderState()
    assert sys_.store.last_recovery() == done.recovered
    inv = sys_.envs.inventory()
    assert inv.find("gamma").failed
    assert not inv.find("beta").failed
    assert message in (tmp_path / "motd.d" / "bootagent").read_text()
    bless = next(e for e in sys_.journal.entries(10) if e.action == "bless")
    assert bless.actor is Actor.AUTOMATIC
    assert bless.detail == message


def test_a_cut_in_bless_is_closed_by_the_next_change(tmp_path: Path) -> None:
    sys_, _ = system(tmp_path)
    intent = sys_.journal.record("bless", "beta", Outcome.INTENT)
    assert [e.op for e in sys_.journal.pending()] == [intent.op]
    lifecycle.bless(sys_)
    assert sys_.journal.pending() == []
    closed = [e for e in sys_.journal.entries(20) if e.op == intent.op and e.outcome.value != "intent"]
    assert [e.outcome.value for e in closed] == ["failed"]


def test_the_record_of_another_boot_is_not_this_ones(tmp_path: Path) -> None:
    sys_, _ = system(tmp_path)
    sys_.store.save_boot(BootRecord("boot-0", "beta", 1, 1, health="failed", failed_required=("x",)))
    assert sys_.record() is None
    assert lifecycle.bless(sys_).environment == "beta"  # an old failure does not block this boot
