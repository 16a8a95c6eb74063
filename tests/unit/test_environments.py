"""The domain rules of bootagent.environments against the in-memory ZFS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bootagent.bootstate import BootStore
from bootagent.config import Config, Retention
from bootagent.environments import BootEnvironments, unique_name
from bootagent.errors import InvalidNameError, NotFoundError, RefusedError, UsageError, ZfsError
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor, CreatedBy, Flag, Prop
from tests.fakes import FakeZfs, reference_pool

NOW = 1_800_000_000.0


@pytest.fixture
def zfs() -> FakeZfs:
    return reference_pool()


@pytest.fixture
def grubenv(tmp_path: Path) -> GrubenvFile:
    (tmp_path / "grub").mkdir()
    env = GrubenvFile(tmp_path / "grub" / "grubenv")
    env.update({"bootagent_default": "beta", "saved_entry": "keep-me"})
    return env


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "state", actor=Actor.CLI, clock=lambda: NOW)


def make(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal, **config: object) -> BootEnvironments:
    cfg = Config(pool="rpool", grubenv=str(grubenv.path))
    if config:
        cfg = replace(cfg, **config)  # type: ignore[arg-type]
    return BootEnvironments(
        zfs,
        cfg,
        "rpool",
        journal,
        BootStore(zfs, grubenv),
        clock=lambda: NOW,
        kernel_release=lambda: "6.1.0-99-amd64",
        mount_base=str(Path(journal.path).parent.parent / "mnt"),
    )


@pytest.fixture
def envs(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> BootEnvironments:
    return make(zfs, grubenv, journal)


# --- listing ------------------------------------------------------------------------------------------
def test_inventory_lists_environments_with_snapshots_and_state(envs: BootEnvironments) -> None:
    inv = envs.inventory()
    assert [e.name for e in inv.environments] == ["alpha", "beta", "gamma"]
    beta = inv.find("beta")
    assert [s.name for s in beta.snapshots] == ["s1", "s2", "s3"]
    assert beta.kernel == "6.1.0-30-amd64"
    assert inv.find("gamma").kernel == "6.12.0-1-amd64"
    assert beta.snapshots[0].description == "step 1"
    assert beta.snapshots[0].created_by is CreatedBy.MANUAL
    assert inv.state.active == "beta"
    assert inv.state.running == "beta"
    assert inv.state.next_once is None
    assert inv.state.last_known_good is None
    assert inv.flags(beta) == (Flag.ACTIVE, Flag.RUNNING)
    # FACTORY and other datasets are never environments
    assert all(not e.dataset.startswith("rpool/FACTORY") for e in inv.environments)


def test_find_unknown_environment_suggests_a_close_name(envs: BootEnvironments) -> None:
    with pytest.raises(NotFoundError) as exc:
        envs.inventory().find("betta")
    assert exc.value.hint == "did you mean 'beta'?"


def test_last_known_good_is_the_most_recently_marked(zfs: FakeZfs, envs: BootEnvironments) -> None:
    zfs.nodes["rpool/ROOT/alpha"].user_props[Prop.LAST_GOOD.value] = "100"
    zfs.nodes["rpool/ROOT/gamma"].user_props[Prop.LAST_GOOD.value] = "200"
    zfs.nodes["rpool/ROOT/beta"].user_props[Prop.LAST_GOOD.value] = "garbage"
    assert envs.inventory().state.last_known_good == "gamma"


def test_next_boot_naming_a_missing_environment_is_ignored(
    envs: BootEnvironments, grubenv: GrubenvFile
) -> None:
    grubenv.update({"bootagent_once": "nonexistent"})
    assert envs.inventory().state.next_once is None


# --- checkpoint -----------------------------------------------------------------------------------------
def test_checkpoint_snapshots_the_running_environment_with_metadata(
    zfs: FakeZfs, envs: BootEnvironments, journal: Journal
) -> None:
    snap = envs.checkpoint(
        description="before upgrade: ünïcode 'quotes'", created_by=CreatedBy.PACKAGE_MANAGER
    )
    assert snap.full_name == "rpool/ROOT/beta@apt-20270115-080000"
    assert snap.description == "before upgrade: ünïcode 'quotes'"
    assert snap.created_by is CreatedBy.PACKAGE_MANAGER
    assert zfs.changes() == [("snapshot", "rpool/ROOT/beta@apt-20270115-080000")]
    outcomes = [(e.action, e.outcome) for e in journal.entries()]
    assert outcomes == [("checkpoint", Outcome.INTENT), ("checkpoint", Outcome.OK)]


def test_checkpoint_with_explicit_name_and_environment(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.checkpoint("alpha", name="pre-test")
    assert "rpool/ROOT/alpha@pre-test" in zfs.nodes


@pytest.mark.parametrize("bad", ["with space", "quote'd", "ünï", "-leading", "a@b", "x" * 65, ""])
def test_checkpoint_refuses_bad_names_without_changing_anything(
    zfs: FakeZfs, envs: BootEnvironments, bad: str
) -> None:
    with pytest.raises(InvalidNameError):
        envs.checkpoint(name=bad)
    assert zfs.changes() == []


def test_checkpoint_refuses_control_characters_in_description(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(UsageError, match="control characters"):
        envs.checkpoint(description="two\nlines")
    assert zfs.changes() == []


def test_checkpoint_refuses_an_existing_name(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(UsageError, match="already exists"):
        envs.checkpoint(name="s1")
    assert zfs.changes() == []


def test_checkpoint_on_a_full_pool_prunes_old_automatic_checkpoints_first(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    for i in range(4):
        zfs.add_snap(
            f"rpool/ROOT/beta@auto-{i}",
            used=5 << 30,
            user_props={Prop.CREATED_BY.value: "automatic"},
        )
    zfs.free = 2 << 30  # 2% of 100 GiB, below min_free_percent=10
    envs = make(zfs, grubenv, journal)
    envs.checkpoint(name="now")
    destroyed = [c for c in zfs.changes() if c[0] == "destroy"]
    assert destroyed == [("destroy", "rpool/ROOT/beta@auto-0", "rpool/ROOT/beta@auto-1")]
    assert "rpool/ROOT/beta@now" in zfs.nodes
    assert "rpool/ROOT/beta@auto-3" in zfs.nodes  # min_keep: the newest prunable one always stays


def test_checkpoint_failure_is_journaled_as_failed(
    zfs: FakeZfs, envs: BootEnvironments, journal: Journal
) -> None:
    zfs.fail_next["snapshot"] = ZfsError("out of space", errno=28)
    with pytest.raises(ZfsError):
        envs.checkpoint(name="x")
    assert [e.outcome for e in journal.entries()] == [Outcome.INTENT, Outcome.FAILED]
    assert journal.entries()[-1].detail == "out of space"
    assert journal.pending() == []


# --- create ---------------------------------------------------------------------------------------------
def test_create_from_snapshot_clones_it_and_leaves_the_source_untouched(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    before = dict(zfs.nodes["rpool/ROOT/alpha@s2"].__dict__)
    env = envs.create("alpha-two", "alpha@s2", description="test clone")
    assert env.origin == "rpool/ROOT/alpha@s2"
    assert env.description == "test clone"
    assert env.kernel == "6.1.0-30-amd64"
    node = zfs.nodes["rpool/ROOT/alpha-two"]
    assert (node.mountpoint, node.canmount) == ("/", "noauto")
    assert node.files["/etc/step"] == "2"
    assert zfs.nodes["rpool/ROOT/alpha@s2"].__dict__ == before


def test_create_from_environment_snapshots_it_first(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.create("copy", "gamma")
    assert zfs.changes()[0] == ("snapshot", "rpool/ROOT/gamma@create-copy")
    assert zfs.nodes["rpool/ROOT/copy"].origin == "rpool/ROOT/gamma@create-copy"


def test_create_refuses_existing_names(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(UsageError, match="already exists"):
        envs.create("alpha", "beta@s1")
    assert zfs.changes() == []


def test_create_refuses_unknown_snapshot(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(NotFoundError, match="no snapshot 's9'"):
        envs.create("new", "beta@s9")
    assert zfs.changes() == []


def test_create_never_leaves_a_half_made_clone(
    zfs: FakeZfs, envs: BootEnvironments, journal: Journal
) -> None:
    zfs.fail_next["set_native"] = ZfsError("boom")
    with pytest.raises(ZfsError):
        envs.create("half", "beta@s1")
    assert "rpool/ROOT/half" not in zfs.nodes
    assert journal.entries()[-1].outcome is Outcome.FAILED


# --- activate -------------------------------------------------------------------------------------------
def test_activate_sets_bootfs_and_grubenv_keeping_foreign_variables(
    zfs: FakeZfs, envs: BootEnvironments, grubenv: GrubenvFile
) -> None:
    envs.activate("alpha")
    assert zfs.bootfs == "rpool/ROOT/alpha"
    values = grubenv.read().values
    assert values["bootagent_default"] == "alpha"
    assert values["saved_entry"] == "keep-me"
    assert envs.inventory().state.active == "alpha"


def test_activate_once_touches_only_the_next_boot(
    zfs: FakeZfs, envs: BootEnvironments, grubenv: GrubenvFile
) -> None:
    envs.activate("gamma", once=True)
    assert zfs.bootfs == "rpool/ROOT/beta"
    assert grubenv.read().values["bootagent_once"] == "gamma"
    state = envs.inventory().state
    assert (state.active, state.next_once) == ("beta", "gamma")


def test_activate_clears_a_pending_trial_of_the_same_environment(
    envs: BootEnvironments, grubenv: GrubenvFile
) -> None:
    envs.activate("gamma", once=True)
    envs.activate("gamma")
    assert "bootagent_once" not in grubenv.read().values


def test_activate_undoes_grubenv_when_bootfs_fails(
    zfs: FakeZfs, envs: BootEnvironments, grubenv: GrubenvFile
) -> None:
    zfs.fail_next["set_bootfs"] = ZfsError("pool is busy")
    with pytest.raises(ZfsError):
        envs.activate("alpha")
    assert grubenv.read().values["bootagent_default"] == "beta"
    assert zfs.bootfs == "rpool/ROOT/beta"


def test_activate_unknown_environment(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(NotFoundError):
        envs.activate("delta")
    assert zfs.changes() == []


# --- rollback / roll forward ----------------------------------------------------------------------------
def test_history_is_newest_first_and_follows_the_origin(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.create("beta-s2", "beta@s2")
    inv = envs.inventory()
    assert [s.label for s in inv.history(inv.find("beta"))] == ["beta@s3", "beta@s2", "beta@s1"]
    assert [s.label for s in inv.history(inv.find("beta-s2"))] == ["beta@s2", "beta@s1"]


def test_rollback_is_non_destructive_by_default(zfs: FakeZfs, envs: BootEnvironments) -> None:
    result = envs.rollback(steps=2)
    assert result.target.label == "beta@s2"
    assert result.environment == "beta-s2"
    assert not result.destructive
    assert zfs.bootfs == "rpool/ROOT/beta-s2"
    assert zfs.nodes["rpool/ROOT/beta-s2"].files["/etc/step"] == "2"
    # the current state and every snapshot are kept
    assert zfs.nodes["rpool/ROOT/beta"].files["/etc/step"] == "4"
    assert {"rpool/ROOT/beta@s1", "rpool/ROOT/beta@s2", "rpool/ROOT/beta@s3"} <= zfs.nodes.keys()
    assert zfs.nodes["rpool/ROOT/beta-s2"].user_props[Prop.ROLLED_BACK_FROM.value] == "beta"


def test_rollback_one_step_by_default_and_unique_names(zfs: FakeZfs, envs: BootEnvironments) -> None:
    assert envs.rollback().environment == "beta-s3"
    assert envs.rollback("beta").environment == "beta-s3-2"


def test_rollback_to_a_named_snapshot(envs: BootEnvironments) -> None:
    assert envs.rollback(to="s1").target.label == "beta@s1"
    assert envs.rollback(to="beta@s2").target.label == "beta@s2"


def test_rollback_beyond_history_is_refused(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(RefusedError, match="only 3 earlier"):
        envs.rollback(steps=4)
    with pytest.raises(NotFoundError):
        envs.rollback(to="nope")
    assert zfs.changes() == []


def test_roll_forward_after_rolling_back_two_steps(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.rollback(steps=2)
    zfs.mounted["/"] = "rpool/ROOT/beta-s2"  # rebooted into it
    one = envs.roll_forward(steps=1)
    assert (one.environment, one.source, one.created) == ("beta-s3", "beta@s3", True)
    assert zfs.bootfs == "rpool/ROOT/beta-s3"
    zfs.mounted["/"] = "rpool/ROOT/beta-s3"
    back = envs.roll_forward()
    assert (back.environment, back.created) == ("beta", False)
    assert zfs.bootfs == "rpool/ROOT/beta"


def test_roll_forward_all_the_way_by_default(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.rollback(steps=3)
    zfs.mounted["/"] = "rpool/ROOT/beta-s1"
    assert envs.roll_forward().environment == "beta"


def test_roll_forward_without_a_rollback_is_refused(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(RefusedError, match="not made by a rollback"):
        envs.roll_forward()
    envs.rollback(steps=1)
    zfs.mounted["/"] = "rpool/ROOT/beta-s3"
    with pytest.raises(RefusedError, match="1 step"):
        envs.roll_forward(steps=2)


def test_destructive_rollback_of_the_running_system_is_refused(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(RefusedError, match="running system"):
        envs.rollback(steps=2, destructive=True)
    assert zfs.changes() == []


def test_destructive_rollback_destroys_newer_snapshots(zfs: FakeZfs, envs: BootEnvironments) -> None:
    result = envs.rollback("alpha", steps=2, destructive=True)
    assert result.destructive
    assert result.destroyed == ("rpool/ROOT/alpha@s3",)
    assert zfs.nodes["rpool/ROOT/alpha"].files["/etc/step"] == "2"
    assert "rpool/ROOT/alpha@s3" not in zfs.nodes


def test_destructive_rollback_refuses_when_a_newer_snapshot_is_protected(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    zfs.nodes["rpool/ROOT/alpha@s3"].user_props[Prop.KEEP.value] = "on"
    envs.create("from-alpha", "alpha@s2")
    zfs.calls.clear()
    with pytest.raises(RefusedError, match=r"alpha@s3 \(it has the keep flag\)"):
        envs.rollback("alpha", steps=3, destructive=True)
    with pytest.raises(RefusedError, match="cloned from it: from-alpha"):
        envs.rollback("alpha", steps=3, destructive=True)  # s2 is an origin too (after s3 in the message)
    assert zfs.changes() == []


def test_destructive_rollback_stays_in_one_environment(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(RefusedError, match="not a snapshot of alpha"):
        envs.rollback("alpha", to="beta@s1", destructive=True)


# --- destroy --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("beta", "running system"),
        ("gamma", "next boot"),
        ("alpha", "last-known-good"),
    ],
)
def test_destroy_refuses_protected_environments(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal, target: str, why: str
) -> None:
    zfs.nodes["rpool/ROOT/alpha"].user_props[Prop.LAST_GOOD.value] = "1000"
    grubenv.update({"bootagent_once": "gamma"})
    envs = make(zfs, grubenv, journal)
    with pytest.raises(RefusedError, match=why):
        envs.destroy([target])
    assert zfs.changes() == []


def test_destroy_refuses_the_active_environment_even_when_not_running(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    envs.activate("alpha")
    zfs.calls.clear()
    with pytest.raises(RefusedError, match="active"):
        envs.destroy(["alpha"])
    assert zfs.changes() == []


def test_destroy_refuses_keep_flag_held_and_cloned(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.set_keep("alpha@s1", True)
    zfs.hold("rpool/ROOT/gamma@s1", "org.bootagent.factory")
    zfs.hold("rpool/ROOT/gamma@s2", "backup")
    envs.create("child", "alpha@s3")
    zfs.calls.clear()
    cases = {
        "alpha@s1": "keep flag",
        "gamma@s1": "factory baseline",
        "gamma@s2": r"held \(backup\)",
        "alpha@s3": "cloned from it: child",
        "alpha": "alpha@s1 is protected",
    }
    for target, why in cases.items():
        with pytest.raises(RefusedError, match=why):
            envs.destroy([target])
    assert zfs.changes() == []


def test_destroy_keep_flagged_environment_is_refused(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.set_keep("gamma", True)
    with pytest.raises(RefusedError, match="keep flag"):
        envs.destroy(["gamma"])
    envs.set_keep("gamma", False)
    assert Prop.KEEP.value not in zfs.nodes["rpool/ROOT/gamma"].user_props


def test_destroy_refuses_all_when_one_is_protected(zfs: FakeZfs, envs: BootEnvironments) -> None:
    with pytest.raises(RefusedError) as exc:
        envs.destroy(["gamma@s1", "beta"])
    assert "beta: it is the running system" in exc.value.message
    assert zfs.changes() == []


def test_destroy_environment_takes_its_snapshots_atomically(
    zfs: FakeZfs, envs: BootEnvironments, journal: Journal
) -> None:
    names = envs.destroy(["gamma"])
    assert names == ["rpool/ROOT/gamma@s1", "rpool/ROOT/gamma@s2", "rpool/ROOT/gamma@s3", "rpool/ROOT/gamma"]
    assert zfs.changes() == [("destroy", *names)]
    assert not any(n.startswith("rpool/ROOT/gamma") for n in zfs.nodes)
    assert journal.entries()[-1].outcome is Outcome.OK


def test_destroy_a_mounted_environment_is_refused(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.mount("gamma")
    with pytest.raises(RefusedError, match="mounted at"):
        envs.destroy(["gamma"])


# --- prune ----------------------------------------------------------------------------------------------
def _add_auto(zfs: FakeZfs, be: str, count: int, *, by: str = "automatic") -> None:
    for i in range(count):
        zfs.add_snap(f"rpool/ROOT/{be}@auto-{i}", user_props={Prop.CREATED_BY.value: by})


def test_prune_by_count_removes_oldest_automatic_first(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    _add_auto(zfs, "beta", 6)
    envs = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=4, max_age_days=0))
    plan = envs.prune(dry_run=True)
    assert [i.snapshot.name for i in plan.items] == ["auto-0", "auto-1"]
    assert zfs.changes() == []  # dry run
    envs.prune()
    assert "rpool/ROOT/beta@auto-0" not in zfs.nodes
    assert "rpool/ROOT/beta@auto-2" in zfs.nodes
    assert all(f"rpool/ROOT/beta@s{i}" in zfs.nodes for i in (1, 2, 3))  # manual ones untouched


def test_prune_never_touches_manual_keep_held_or_cloned(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    _add_auto(zfs, "alpha", 5)
    zfs.nodes["rpool/ROOT/alpha@auto-0"].user_props[Prop.KEEP.value] = "on"
    zfs.hold("rpool/ROOT/alpha@auto-1", "x")
    envs = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=1, max_age_days=0))
    envs.create("clone", "alpha@auto-2")
    plan = envs.prune(dry_run=True)
    assert [i.snapshot.name for i in plan.items] == ["auto-3"]  # auto-4 is the min_keep floor


def test_a_mounted_snapshot_is_neither_pruned_nor_destroyed(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    """ZFS refuses to destroy a mounted snapshot: the domain says so first (not a whole batch failing)."""
    _add_auto(zfs, "alpha", 3)
    envs = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=1, max_age_days=0))
    zfs.mounted["/run/bootagent/mnt/alpha@auto-0"] = "rpool/ROOT/alpha@auto-0"
    assert [i.snapshot.name for i in envs.prune(dry_run=True).items] == ["auto-1"]
    with pytest.raises(RefusedError, match="it is mounted"):
        envs.destroy(["alpha@auto-0"])


def test_prune_by_age(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> None:
    _add_auto(zfs, "beta", 3)
    zfs.nodes["rpool/ROOT/beta@auto-0"].creation = int(NOW - 100 * 86400)
    zfs.nodes["rpool/ROOT/beta@auto-1"].creation = int(NOW - 10 * 86400)
    envs = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=1, max_age_days=30))
    plan = envs.prune(dry_run=True)
    reasons = {i.snapshot.name: i.reason.value for i in plan.items}
    assert reasons == {"auto-0": "count", "auto-1": "count"}
    envs2 = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=10, max_age_days=30))
    assert {i.snapshot.name: i.reason.value for i in envs2.prune(dry_run=True).items} == {"auto-0": "age"}


def test_prune_by_space_and_report_when_goal_cannot_be_met(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    _add_auto(zfs, "beta", 3)
    for i in range(3):
        zfs.nodes[f"rpool/ROOT/beta@auto-{i}"].used = 1 << 30
    zfs.free = 5 << 30
    envs = make(zfs, grubenv, journal, retention=replace(Retention(), keep_count=10, max_age_days=0))
    plan = envs.prune(dry_run=True)
    assert [(i.snapshot.name, i.reason.value) for i in plan.items] == [
        ("auto-0", "space"),
        ("auto-1", "space"),
    ]
    assert not plan.space_goal_met  # the newest is kept (min_keep), so 7 GiB < 10 GiB


def test_prune_nothing_to_do(zfs: FakeZfs, envs: BootEnvironments) -> None:
    assert envs.prune().items == ()
    assert zfs.changes() == []


# --- mark-good, mount, diff -----------------------------------------------------------------------------
def test_mark_good_sets_time_and_running_kernel(zfs: FakeZfs, envs: BootEnvironments) -> None:
    env = envs.mark_good()
    assert env.last_good == int(NOW)
    assert env.kernel == "6.1.0-99-amd64"
    assert envs.inventory().state.last_known_good == "beta"


def test_mount_and_umount_a_snapshot(zfs: FakeZfs, envs: BootEnvironments) -> None:
    path = envs.mount("alpha@s1")
    assert path.endswith("/mnt/alpha@s1")
    assert zfs.mounted[path] == "rpool/ROOT/alpha@s1"
    assert envs.umount("alpha@s1") == path
    assert path not in zfs.mounted
    assert not Path(path).exists()


def test_mount_refuses_the_running_root_and_nonempty_dirs(
    zfs: FakeZfs, envs: BootEnvironments, tmp_path: Path
) -> None:
    with pytest.raises(RefusedError, match="already mounted at /"):
        envs.mount("beta")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(RefusedError, match="not empty"):
        envs.mount("alpha", str(busy))
    with pytest.raises(RefusedError, match="running root"):
        envs.umount("/")
    with pytest.raises(NotFoundError):
        envs.umount(str(tmp_path / "nothing"))


def test_diff_between_snapshot_and_environment(zfs: FakeZfs, envs: BootEnvironments) -> None:
    zfs.nodes["rpool/ROOT/beta"].files["/etc/new"] = "x"
    entries = envs.diff("beta@s1", "beta")
    assert [(e.change.value, e.path) for e in entries] == [("+", "/etc/new"), ("M", "/etc/step")]


def test_diff_refuses_unrelated_states(envs: BootEnvironments) -> None:
    with pytest.raises(UsageError, match="must be a snapshot"):
        envs.diff("beta", "beta@s1")
    with pytest.raises(UsageError, match="different environments"):
        envs.diff("alpha@s1", "beta")


def test_unique_name_truncates_and_numbers() -> None:
    assert unique_name("a", []) == "a"
    assert unique_name("a", ["a", "a-2"]) == "a-3"
    long = "x" * 70
    assert len(unique_name(long, ["x" * 64])) == 64
    assert unique_name(long, ["x" * 64]).endswith("-2")


def test_every_change_is_journaled_with_actor(envs: BootEnvironments, journal: Journal) -> None:
    envs.rollback(steps=1)
    actions = [(e.action, e.outcome.value, e.actor.value) for e in journal.entries()]
    assert ("rollback", "intent", "cli") in actions
    assert ("create", "ok", "cli") in actions
    assert ("activate", "ok", "cli") in actions
    assert actions[-1] == ("rollback", "ok", "cli")
