"""Operations a power cut left pending are finished or undone by the next change, from what ZFS shows.

A cut is simulated by writing the intent (and doing part of the work by hand on the fake pool) without
recording an outcome -- what the journal holds after the plug was pulled."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.errors import ZfsError
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal, JournalEntry, Outcome
from bootagent.model import Actor, Prop
from bootagent.resume import Resolution
from tests.fakes import FakeZfs, reference_pool

NOW = 1_800_000_000.0


@pytest.fixture
def zfs() -> FakeZfs:
    return reference_pool()


@pytest.fixture
def grubenv(tmp_path: Path) -> GrubenvFile:
    (tmp_path / "grub").mkdir()
    env = GrubenvFile(tmp_path / "grub" / "grubenv")
    env.update({"bootagent_default": "beta"})
    return env


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "state", actor=Actor.CLI, clock=lambda: NOW)


def envs_of(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> BootEnvironments:
    return BootEnvironments(
        zfs, Config(pool="rpool", grubenv=str(grubenv.path)), "rpool", journal, BootStore(zfs, grubenv),
        clock=lambda: NOW,
    )  # fmt: skip


def cut(journal: Journal, action: str, what: str, **data: str) -> JournalEntry:
    """The intent reached the disk; the outcome never did."""
    return journal.record(action, what, Outcome.INTENT, data=data)


def outcomes(journal: Journal, intent: JournalEntry) -> list[Outcome]:
    return [e.outcome for e in journal.entries() if e.op == intent.op and e.outcome is not Outcome.INTENT]


def resolve(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> list[Resolution]:
    return envs_of(zfs, grubenv, journal).resume_pending()


def test_a_checkpoint_cut_after_its_snapshot_is_done_and_before_it_changed_nothing(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    made = cut(journal, "checkpoint", "beta@made", snapshot="rpool/ROOT/beta@made")
    zfs.add_snap("rpool/ROOT/beta@made")
    lost = cut(journal, "checkpoint", "beta@lost", snapshot="rpool/ROOT/beta@lost")
    done = resolve(zfs, grubenv, journal)
    assert {(r.intent.op, r.outcome) for r in done} == {(made.op, Outcome.RESUMED), (lost.op, Outcome.FAILED)}
    assert journal.pending() == []
    assert outcomes(journal, made) == [Outcome.RESUMED]
    assert "no snapshot was made" in done[0].detail or "no snapshot was made" in done[1].detail


def test_a_create_cut_between_the_clone_and_its_mount_settings_is_finished(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    intent = cut(journal, "create", "half", dataset="rpool/ROOT/half")
    zfs.clone("rpool/ROOT/half", "rpool/ROOT/beta@s2", {})
    assert zfs.nodes["rpool/ROOT/half"].canmount == "on"
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.RESUMED
    assert (zfs.nodes["rpool/ROOT/half"].canmount, zfs.nodes["rpool/ROOT/half"].mountpoint) == ("noauto", "/")
    assert outcomes(journal, intent) == [Outcome.RESUMED]


def test_an_activation_cut_between_grubenv_and_bootfs_is_finished_so_they_agree(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    cut(journal, "activate", "gamma", dataset="rpool/ROOT/gamma")
    grubenv.update({"bootagent_default": "gamma"})  # written first; the cut came before bootfs
    assert zfs.bootfs == "rpool/ROOT/beta"
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.RESUMED
    assert zfs.bootfs == "rpool/ROOT/gamma"
    assert grubenv.read().get("bootagent_default") == "gamma"


def test_a_next_boot_choice_is_never_re_armed(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> None:
    cut(journal, "activate-once", "alpha", dataset="rpool/ROOT/alpha")
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.FAILED
    assert grubenv.read().get("bootagent_once") is None
    cut(journal, "activate-once", "alpha", dataset="rpool/ROOT/alpha")
    grubenv.update({"bootagent_once": "alpha"})
    assert resolve(zfs, grubenv, journal)[0].outcome is Outcome.RESUMED


def test_a_rollback_cut_with_its_inner_steps_is_finished_newest_first(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    """rollback -> create (done) -> activate (cut): the new environment becomes the default."""
    outer = cut(journal, "rollback", "beta", target="beta@s2", new="beta-s2")
    inner = cut(journal, "create", "beta-s2", dataset="rpool/ROOT/beta-s2")
    zfs.clone("rpool/ROOT/beta-s2", "rpool/ROOT/beta@s2", {})
    zfs.set_native("rpool/ROOT/beta-s2", {"canmount": "noauto", "mountpoint": "/"})
    journal.close_pending(inner, Outcome.OK)  # the create finished
    activate = cut(journal, "activate", "beta-s2", dataset="rpool/ROOT/beta-s2")
    done = resolve(zfs, grubenv, journal)
    assert [r.intent.op for r in done] == [activate.op, outer.op]
    assert all(r.outcome is Outcome.RESUMED for r in done)
    assert zfs.bootfs == "rpool/ROOT/beta-s2"
    assert grubenv.read().get("bootagent_default") == "beta-s2"
    assert journal.pending() == []


def test_a_rollback_cut_before_the_clone_changes_nothing(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    cut(journal, "rollback", "beta", target="beta@s2", new="beta-s2")
    before = dict(zfs.nodes)
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.FAILED
    assert zfs.nodes.keys() == before.keys()
    assert zfs.bootfs == "rpool/ROOT/beta"


def test_a_destroy_cut_half_way_is_finished_while_it_is_still_allowed(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    names = ["rpool/ROOT/alpha@s1", "rpool/ROOT/alpha@s2", "rpool/ROOT/alpha@s3"]
    cut(journal, "destroy", "alpha@s1 alpha@s2 alpha@s3", datasets=" ".join(names))
    zfs.destroy(names[:1])  # the command-line fallback destroys one at a time
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.RESUMED
    assert not any(zfs.exists(n) for n in names)


def test_a_destroy_cut_half_way_stops_where_a_safety_rule_now_says_no(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    names = ["rpool/ROOT/alpha@s1", "rpool/ROOT/alpha@s2"]
    cut(journal, "destroy", "alpha@s1 alpha@s2", datasets=" ".join(names))
    zfs.destroy(names[:1])
    zfs.nodes["rpool/ROOT/alpha@s2"].user_props[Prop.KEEP.value] = "on"  # kept since
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.FAILED
    assert "keep flag" in done.detail
    assert zfs.exists("rpool/ROOT/alpha@s2")


def test_an_in_place_rollback_cut_half_way_is_finished(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    cut(journal, "rollback-destroy-newer", "alpha", target="alpha@s1", destroys="s2 s3")
    zfs.destroy(["rpool/ROOT/alpha@s3"])
    [done] = resolve(zfs, grubenv, journal)
    assert done.outcome is Outcome.RESUMED
    assert [s.name for s in zfs.snapshots_of("rpool/ROOT/alpha")] == ["rpool/ROOT/alpha@s1"]


def test_properties_are_judged_by_their_value(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> None:
    keep = cut(journal, "keep", "gamma@s1", dataset="rpool/ROOT/gamma@s1")
    zfs.nodes["rpool/ROOT/gamma@s1"].user_props[Prop.KEEP.value] = "on"
    good = cut(journal, "mark-good", "beta", dataset="rpool/ROOT/beta", value="1799999999")
    got = {r.intent.op: r.outcome for r in resolve(zfs, grubenv, journal)}
    assert got == {keep.op: Outcome.RESUMED, good.op: Outcome.FAILED}


def test_what_cannot_be_judged_now_stays_pending(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    cut(journal, "reset-everything", "rpool")  # an action of a later version
    cut(journal, "activate", "gamma", dataset="rpool/ROOT/gamma")
    zfs.fail_next["set_bootfs"] = ZfsError("pool I/O is currently suspended")
    assert resolve(zfs, grubenv, journal) == []
    assert {e.action for e in journal.pending()} == {"reset-everything", "activate"}
    assert "not one this version can finish" in caplog.text
    assert "pool I/O is currently suspended" in caplog.text
    # the next run finishes what it now can
    assert [r.intent.action for r in resolve(zfs, grubenv, journal)] == ["activate"]


def test_the_next_change_resolves_first_and_only_once(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    cut(journal, "checkpoint", "beta@made", snapshot="rpool/ROOT/beta@made")
    zfs.add_snap("rpool/ROOT/beta@made")
    envs = envs_of(zfs, grubenv, journal)
    envs.inventory()
    envs.prune(dry_run=True)  # looking changes nothing, resolves nothing
    assert len(journal.pending()) == 1
    envs.checkpoint("beta", name="next")
    assert journal.pending() == []
    assert [r.intent.target for r in envs.resolutions] == ["beta@made"]
    assert "was cut short earlier; finished" in envs.resolutions[0].describe()
    assert envs.resume_pending() == []
