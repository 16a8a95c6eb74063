"""Boot-environment pairs (bootagent.pairs): the HOWTO's rpool/ROOT/<name> + bpool/BOOT/<name>, treated as
one by every operation, against the in-memory ZFS -- a missing or mismatched half included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.errors import RefusedError, ZfsError
from bootagent.grubenv import GrubenvFile
from bootagent.inventory import assemble
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor, Prop
from bootagent.pairs import PAIR_SKEW, PairLayout, detect_boot_pool, pair_up, with_boot_halves
from tests.fakes import FakeZfs, howto_pools, reference_pool
from tests.unit.test_environments import make

NOW = 1_800_000_000.0


@pytest.fixture
def zfs() -> FakeZfs:
    return howto_pools()


@pytest.fixture
def grubenv(tmp_path: Path) -> GrubenvFile:
    (tmp_path / "grub").mkdir()
    env = GrubenvFile(tmp_path / "grub" / "grubenv")
    env.update({"bootagent_default": "beta"})
    return env


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "state", actor=Actor.CLI, clock=lambda: NOW)


@pytest.fixture
def envs(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal) -> BootEnvironments:
    return make(zfs, grubenv, journal)


def halves(zfs: FakeZfs, name: str) -> tuple[bool, bool]:
    """Whether rpool/ROOT/NAME and bpool/BOOT/NAME exist (NAME may be ENV@SNAP)."""
    return zfs.exists(f"rpool/ROOT/{name}"), zfs.exists(f"bpool/BOOT/{name}")


# --- finding the boot pool -------------------------------------------------------------------------------
def test_auto_finds_the_one_other_pool_with_the_boot_container(zfs: FakeZfs) -> None:
    warnings: list[str] = []
    assert detect_boot_pool(zfs, Config(), "rpool", warnings) == "bpool"
    assert warnings == []
    assert detect_boot_pool(zfs, Config(boot_pool="none"), "rpool", warnings) is None
    assert detect_boot_pool(zfs, Config(boot_pool="bpool"), "rpool", warnings) == "bpool"


def test_a_single_pool_has_no_boot_pool_and_nothing_changes() -> None:
    zfs = reference_pool()
    warnings: list[str] = []
    assert detect_boot_pool(zfs, Config(), "rpool", warnings) is None
    assert warnings == []


def test_two_candidate_boot_pools_are_not_guessed_between(zfs: FakeZfs) -> None:
    del zfs.mounted["/boot"]  # nothing says which (in the early boot, say)
    zfs.add_pool("bpool2")
    zfs.add_fs("bpool2/BOOT", canmount="off", mountpoint="none")
    warnings: list[str] = []
    assert detect_boot_pool(zfs, Config(), "rpool", warnings) is None
    assert warnings == [
        "several pools have BOOT (bpool, bpool2): set 'boot_pool:' in /etc/bootagent/bootagent.yaml; "
        "/boot is taken to be inside each environment"
    ]
    assert detect_boot_pool(zfs, Config(boot_pool="bpool2"), "rpool", []) == "bpool2"
    zfs.mounted["/boot"] = "bpool2/BOOT/beta"  # the running system's /boot decides
    assert detect_boot_pool(zfs, Config(), "rpool", []) == "bpool2"


def test_a_boot_pool_that_is_the_root_pool_is_no_pair() -> None:
    warnings: list[str] = []
    assert detect_boot_pool(reference_pool(), Config(boot_pool="rpool"), "rpool", warnings) is None
    assert "names the root pool rpool" in warnings[0]


# --- reading pairs ---------------------------------------------------------------------------------------
def test_every_environment_and_snapshot_has_its_boot_half(envs: BootEnvironments) -> None:
    inv = envs.inventory()
    assert inv.boot == "bpool/BOOT"
    assert inv.orphans == ()
    for env in inv.environments:
        assert (env.boot_dataset, env.missing_half) == (f"bpool/BOOT/{env.name}", None)
        assert [(s.boot_name, s.missing_half) for s in env.snapshots] == [
            (f"bpool/BOOT/{env.name}@s{n}", None) for n in (1, 2, 3)
        ]


def test_a_missing_half_is_shown_and_explained_and_never_booted(zfs: FakeZfs, envs: BootEnvironments) -> None:
    for snap in ("s1", "s2", "s3"):
        del zfs.nodes[f"bpool/BOOT/gamma@{snap}"]
    del zfs.nodes["bpool/BOOT/gamma"]
    del zfs.nodes["bpool/BOOT/alpha@s2"]
    inv = envs.inventory()
    gamma = inv.find("gamma")
    assert gamma.missing_half == "its /boot half bpool/BOOT/gamma does not exist"
    assert gamma.boot_dataset is None
    alpha = inv.find("alpha")
    assert alpha.missing_half is None
    assert [s.missing_half for s in alpha.snapshots] == [
        None,
        "its /boot half bpool/BOOT/alpha@s2 does not exist",
        None,
    ]
    with pytest.raises(RefusedError, match="gamma is half a boot environment: its /boot half"):
        envs.activate("gamma")
    with pytest.raises(RefusedError, match="half a boot environment"):
        envs.activate("gamma", once=True)
    with pytest.raises(RefusedError, match="half a boot environment"):
        envs.checkpoint("gamma")
    with pytest.raises(RefusedError, match="alpha@s2 is half a boot environment"):
        envs.create("new", "alpha@s2")
    with pytest.raises(RefusedError, match="alpha@s2 is half"):
        envs.rollback("alpha", to="s2")
    assert not zfs.exists("rpool/ROOT/new")
    # the other states of alpha still work
    envs.create("new", "alpha@s1")
    assert halves(zfs, "new") == (True, True)


def test_the_halves_must_be_one_checkpoint(zfs: FakeZfs, envs: BootEnvironments) -> None:
    zfs.nodes["bpool/BOOT/beta@s1"].user_props["org.bootagent:pair"] = "another"
    zfs.nodes["rpool/ROOT/beta@s2"].user_props.pop("org.bootagent:pair")
    zfs.nodes["bpool/BOOT/beta@s2"].user_props.pop("org.bootagent:pair")
    zfs.nodes["bpool/BOOT/beta@s2"].creation += PAIR_SKEW  # made by hand, close together: one state
    zfs.nodes["rpool/ROOT/beta@s3"].user_props.pop("org.bootagent:pair")
    zfs.nodes["bpool/BOOT/beta@s3"].creation += 2 * 3600 + 1  # made by hand, hours apart
    snaps = envs.inventory().find("beta").snapshots
    assert [s.missing_half for s in snaps] == [
        "its /boot half bpool/BOOT/beta@s1 is from another checkpoint (the pair marks differ)",
        None,
        "its /boot half bpool/BOOT/beta@s3 was taken 2 h apart from it",
    ]


def test_a_boot_half_without_its_root_half_is_listed_as_an_orphan(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    zfs.add_fs("bpool/BOOT/old", mountpoint="/boot")
    zfs.add_snap("bpool/BOOT/beta@lonely")
    assert envs.inventory().orphans == ("bpool/BOOT/beta@lonely", "bpool/BOOT/old")


def test_an_unreadable_boot_pool_makes_every_environment_a_missing_half(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    envs.inventory()  # the layout was found while bpool was there
    zfs.extra_pools.remove("bpool")
    for name in [n for n in zfs.nodes if n.startswith("bpool")]:
        del zfs.nodes[name]
    inv = envs.inventory()
    assert {e.missing_half for e in inv.environments} == {
        "the boot pool's bpool/BOOT cannot be read (dataset does not exist: bpool/BOOT)"
    }
    with pytest.raises(RefusedError):
        envs.activate("alpha")


def test_pair_up_without_a_boot_pool_is_the_listing_itself() -> None:
    zfs = reference_pool()
    listed = assemble("rpool/ROOT", zfs.list_tree("rpool/ROOT"))
    paired = pair_up(PairLayout("rpool/ROOT"), listed, [])
    assert paired.environments == tuple(listed)
    assert paired.orphans == ()


# --- changing pairs --------------------------------------------------------------------------------------
def test_a_checkpoint_takes_both_halves_with_one_pair_mark(
    zfs: FakeZfs, envs: BootEnvironments, journal: Journal
) -> None:
    snap = envs.checkpoint("beta", name="before-upgrade", description="apt")
    assert snap.boot_name == "bpool/BOOT/beta@before-upgrade"
    assert snap.missing_half is None
    root, boot = zfs.nodes["rpool/ROOT/beta@before-upgrade"], zfs.nodes["bpool/BOOT/beta@before-upgrade"]
    assert root.user_props[Prop.PAIR.value] == boot.user_props[Prop.PAIR.value]
    assert root.user_props[Prop.PAIR.value].startswith(f"{int(NOW)}-")
    assert boot.user_props[Prop.DESCRIPTION.value] == "apt"
    [intent] = [e for e in journal.entries() if e.action == "checkpoint" and e.outcome is Outcome.INTENT]
    assert intent.data == {
        "snapshot": "rpool/ROOT/beta@before-upgrade",
        "boot": "bpool/BOOT/beta@before-upgrade",
    }


def test_a_boot_half_that_cannot_be_taken_takes_the_root_half_back(
    zfs: FakeZfs, envs: BootEnvironments, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = zfs.snapshot

    def snapshot(names: list[str], props: dict[str, str]) -> None:
        if names[0].startswith("bpool/"):
            raise ZfsError("out of space", errno=28)
        real(names, props)

    monkeypatch.setattr(zfs, "snapshot", snapshot)
    with pytest.raises(ZfsError, match="out of space"):
        envs.checkpoint("beta", name="cp")
    assert halves(zfs, "beta@cp") == (False, False)


def test_create_clones_both_halves_and_mounts_the_boot_half_at_boot(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    env = envs.create("delta", "beta@s2")
    assert (env.boot_dataset, env.missing_half) == ("bpool/BOOT/delta", None)
    boot = zfs.nodes["bpool/BOOT/delta"]
    assert (boot.origin, boot.canmount, boot.mountpoint) == ("bpool/BOOT/beta@s2", "noauto", "/boot")
    assert zfs.nodes["rpool/ROOT/delta"].origin == "rpool/ROOT/beta@s2"
    # from an environment: a checkpoint of both halves first
    env = envs.create("epsilon", "alpha")
    assert zfs.nodes["bpool/BOOT/epsilon"].origin == "bpool/BOOT/alpha@create-epsilon"
    assert env.missing_half is None


def test_a_boot_half_that_cannot_be_cloned_leaves_nothing(
    zfs: FakeZfs, envs: BootEnvironments, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = zfs.clone

    def clone(name: str, origin: str, props: dict[str, str]) -> None:
        if name.startswith("bpool/"):
            raise ZfsError("out of space", errno=28)
        real(name, origin, props)

    monkeypatch.setattr(zfs, "clone", clone)
    with pytest.raises(ZfsError):
        envs.create("delta", "beta@s2")
    assert halves(zfs, "delta") == (False, False)


def test_rollback_two_steps_and_roll_forward_move_both_halves(zfs: FakeZfs, envs: BootEnvironments) -> None:
    back = envs.rollback("beta", steps=2)
    assert back.target.label == "beta@s2"
    assert zfs.nodes[f"bpool/BOOT/{back.environment}"].origin == "bpool/BOOT/beta@s2"
    assert envs.inventory().state.active == back.environment
    forward = envs.roll_forward(back.environment, steps=1)
    assert forward.source == "beta@s3"
    assert zfs.nodes[f"bpool/BOOT/{forward.environment}"].origin == "bpool/BOOT/beta@s3"
    assert envs.inventory().find(forward.environment).missing_half is None


def test_an_in_place_rollback_rolls_back_both_halves(zfs: FakeZfs, envs: BootEnvironments) -> None:
    result = envs.rollback("alpha", to="s1", destructive=True)
    assert sorted(result.destroyed) == sorted(
        [f"{p}/alpha@{s}" for p in ("rpool/ROOT", "bpool/BOOT") for s in ("s2", "s3")]
    )
    assert [s.name for s in zfs.snapshots_of("bpool/BOOT/alpha")] == ["bpool/BOOT/alpha@s1"]


def test_destroy_and_prune_take_both_halves(zfs: FakeZfs, envs: BootEnvironments) -> None:
    envs.destroy(["alpha@s1"])
    assert halves(zfs, "alpha@s1") == (False, False)
    envs.destroy(["gamma"])
    assert halves(zfs, "gamma") == (False, False)
    assert not [n for n in zfs.nodes if n.startswith(("rpool/ROOT/gamma", "bpool/BOOT/gamma"))]
    for snap in ("s1", "s2", "s3"):
        zfs.nodes[f"rpool/ROOT/beta@{snap}"].user_props[Prop.CREATED_BY.value] = "automatic"
    plan = envs.prune()
    assert plan.names
    for name in plan.names:
        assert not zfs.exists(name)
        assert not zfs.exists(name.replace("rpool/ROOT/", "bpool/BOOT/"))


def test_mount_puts_the_boot_half_inside(
    zfs: FakeZfs, envs: BootEnvironments, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "look"
    where.mkdir()
    real = zfs.mount

    def mount(name: str, path: str) -> None:  # a root snapshot has its (empty) /boot directory
        real(name, path)
        if name.startswith("rpool/"):
            (Path(path) / "boot").mkdir()

    monkeypatch.setattr(zfs, "mount", mount)
    envs.mount("alpha@s2", str(where))
    assert zfs.mounted[str(where)] == "rpool/ROOT/alpha@s2"
    assert zfs.mounted[str(where / "boot")] == "bpool/BOOT/alpha@s2"
    envs.umount(str(where))
    assert str(where) not in zfs.mounted
    assert str(where / "boot") not in zfs.mounted


def test_with_boot_halves_puts_each_boot_half_after_its_root_half(envs: BootEnvironments) -> None:
    inv = envs.inventory()
    assert with_boot_halves(["rpool/ROOT/alpha@s1", "rpool/ROOT/alpha", "rpool/other"], inv.environments) == [
        "rpool/ROOT/alpha@s1",
        "bpool/BOOT/alpha@s1",
        "rpool/ROOT/alpha",
        "bpool/BOOT/alpha",
        "rpool/other",
    ]


# --- cut short -------------------------------------------------------------------------------------------
def test_a_checkpoint_cut_between_its_halves_is_undone(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    intent = journal.record(
        "checkpoint", "beta@cut", Outcome.INTENT,
        data={"snapshot": "rpool/ROOT/beta@cut", "boot": "bpool/BOOT/beta@cut"},
    )  # fmt: skip
    zfs.add_snap("rpool/ROOT/beta@cut")
    [done] = make(zfs, grubenv, journal).resume_pending()
    assert (done.intent.op, done.outcome) == (intent.op, Outcome.ROLLED_BACK)
    assert "was never taken" in done.detail
    assert halves(zfs, "beta@cut") == (False, False)


def test_a_create_cut_before_its_boot_half_is_finished(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    journal.record(
        "create", "half", Outcome.INTENT, data={"dataset": "rpool/ROOT/half", "boot": "bpool/BOOT/half"}
    )
    zfs.clone("rpool/ROOT/half", "rpool/ROOT/beta@s2", {})
    [done] = make(zfs, grubenv, journal).resume_pending()
    assert done.outcome is Outcome.RESUMED
    assert "its /boot half was cloned from bpool/BOOT/beta@s2" in done.detail
    boot = zfs.nodes["bpool/BOOT/half"]
    assert (boot.origin, boot.canmount, boot.mountpoint) == ("bpool/BOOT/beta@s2", "noauto", "/boot")


def test_a_create_whose_boot_half_cannot_be_made_any_more_is_removed(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    journal.record("create", "half", Outcome.INTENT, data={"dataset": "rpool/ROOT/half"})
    zfs.clone("rpool/ROOT/half", "rpool/ROOT/beta@s2", {})
    del zfs.nodes["bpool/BOOT/beta@s2"]
    [done] = make(zfs, grubenv, journal).resume_pending()
    assert done.outcome is Outcome.FAILED
    assert halves(zfs, "half") == (False, False)


def test_an_in_place_rollback_cut_half_way_finishes_both_halves(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    journal.record(
        "rollback-destroy-newer", "alpha", Outcome.INTENT,
        data={"target": "alpha@s1", "destroys": "s2 s3", "boot": "bpool/BOOT/alpha@s1",
              "boot_destroys": "bpool/BOOT/alpha@s2 bpool/BOOT/alpha@s3"},
    )  # fmt: skip
    zfs.rollback_destroying_newer("rpool/ROOT/alpha@s1")  # the root half was done, the cut came before /boot
    [done] = make(zfs, grubenv, journal).resume_pending()
    assert done.outcome is Outcome.RESUMED
    assert [s.name for s in zfs.snapshots_of("bpool/BOOT/alpha")] == ["bpool/BOOT/alpha@s1"]


# --- what a review found: nothing changes one half alone -------------------------------------------------
def without_boot_pool(zfs: FakeZfs) -> None:
    zfs.extra_pools.remove("bpool")
    for name in [n for n in zfs.nodes if n.startswith("bpool")]:
        del zfs.nodes[name]


def test_with_the_boot_pool_unreadable_nothing_changes(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    envs = make(zfs, grubenv, journal, boot_pool="bpool")  # named in the config, as setup writes it
    without_boot_pool(zfs)
    before = set(zfs.nodes)
    for snap in ("s1", "s2", "s3"):
        zfs.nodes[f"rpool/ROOT/beta@{snap}"].user_props[Prop.CREATED_BY.value] = "automatic"
    attempts: list[Callable[[], object]] = [
        lambda: envs.checkpoint("alpha", name="x"),
        lambda: envs.create("new", "alpha@s1"),
        lambda: envs.rollback("alpha", steps=1),
        lambda: envs.rollback("alpha", to="s1", destructive=True),
        lambda: envs.destroy(["gamma"]),
        lambda: envs.destroy(["alpha@s1"]),
        lambda: envs.prune(),
    ]
    for attempt in attempts:
        with pytest.raises(RefusedError, match="the boot pool's bpool/BOOT cannot be read"):
            attempt()
    assert set(zfs.nodes) == before
    assert envs.prune(dry_run=True).items  # looking is still allowed
    assert all(s.missing_half for e in envs.inventory().environments for s in e.snapshots)


def test_with_the_boot_pool_missing_operations_cut_short_stay_pending(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    """A missing /boot half would be taken for one never made: the root halves would be removed."""
    zfs.add_snap("rpool/ROOT/beta@cut")
    journal.record(
        "checkpoint", "beta@cut", Outcome.INTENT,
        data={"snapshot": "rpool/ROOT/beta@cut", "boot": "bpool/BOOT/beta@cut"},
    )  # fmt: skip
    zfs.clone("rpool/ROOT/made", "rpool/ROOT/beta@s2", {})
    journal.record("create", "made", Outcome.INTENT, data={"dataset": "rpool/ROOT/made"})
    without_boot_pool(zfs)
    assert make(zfs, grubenv, journal, boot_pool="bpool").resume_pending() == []
    assert len(journal.pending()) == 2
    assert zfs.exists("rpool/ROOT/beta@cut")
    assert zfs.exists("rpool/ROOT/made")


def test_a_new_environment_is_never_paired_with_a_stale_boot_half(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    zfs.add_fs("bpool/BOOT/delta", mountpoint="/boot", canmount="noauto")
    with pytest.raises(RefusedError, match="bpool/BOOT/delta exists without a root half"):
        envs.create("delta", "beta@s2")
    assert not zfs.exists("rpool/ROOT/delta")


def test_a_create_cut_is_not_finished_with_a_boot_half_of_another_origin(
    zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal
) -> None:
    journal.record("create", "half", Outcome.INTENT, data={"dataset": "rpool/ROOT/half"})
    zfs.clone("rpool/ROOT/half", "rpool/ROOT/beta@s2", {})
    zfs.clone("bpool/BOOT/half", "bpool/BOOT/alpha@s1", {})  # somebody else's
    assert make(zfs, grubenv, journal).resume_pending() == []
    assert len(journal.pending()) == 1  # left for a person, with the reason in the log
    assert zfs.exists("rpool/ROOT/half")


def test_destroying_a_pair_takes_the_boot_snapshots_without_a_root_half_too(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    zfs.add_snap("bpool/BOOT/gamma@by-hand")
    envs.destroy(["gamma"])
    assert not [n for n in zfs.nodes if "gamma" in n]


def test_an_in_place_rollback_under_a_mounted_boot_half_is_refused(
    zfs: FakeZfs, envs: BootEnvironments
) -> None:
    zfs.mounted["/mnt/boot"] = "bpool/BOOT/alpha"
    with pytest.raises(RefusedError, match=r"its /boot half bpool/BOOT/alpha \(mounted"):
        envs.rollback("alpha", to="s1", destructive=True)
    assert len(zfs.snapshots_of("rpool/ROOT/alpha")) == 3


def test_half_a_pair_is_no_candidate_of_the_recovery_ladder(zfs: FakeZfs, envs: BootEnvironments) -> None:
    from bootagent.boot.recover import candidates

    for name in [n for n in zfs.nodes if n.startswith("bpool/BOOT/gamma")]:
        del zfs.nodes[name]
    assert {c.name: c.bootable for c in candidates(envs)} == {"alpha": True, "beta": True, "gamma": False}
