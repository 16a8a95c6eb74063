"""Carrying out a reset: the end state of each mode, and a power cut after (and inside) every step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootagent.config import Config
from bootagent.journal import Outcome
from bootagent.model import FACTORY_HOLD_TAG
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan, key_file
from bootagent.reset.run import ResetTarget
from bootagent.reset.service import prepare, resume, start
from bootagent.reset.store import RESET_VAR, ResetStore
from tests.fakes import FakeZfs
from tests.unit.reset.conftest import NOW, appliance_pool, make_target, with_reset


class PowerCut(Exception):
    pass


def plan_for(target: ResetTarget, config: Config, mode: ResetMode, **kw: object) -> ResetPlan:
    return prepare(target.zfs, config, "rpool", mode, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


def end_state(zfs: FakeZfs) -> dict[str, object]:
    """What a reset leaves, without what differs between two runs (guids, txgs)."""
    return {
        name: (
            node.kind,
            node.origin,
            node.mountpoint,
            node.canmount,
            dict(node.user_props),
            dict(node.files),
            sorted(node.holds),
            dict(node.native),
        )
        for name, node in sorted(zfs.nodes.items())
    }


def test_keep_data_boots_a_clone_of_the_baseline_and_restores_config(
    target: ResetTarget, config: Config
) -> None:
    zfs = target.zfs
    assert isinstance(zfs, FakeZfs)
    customers_before = {
        n: (v.guid, dict(v.files)) for n, v in zfs.nodes.items() if n.startswith("rpool/customer")
    }
    p = plan_for(target, config, ResetMode.KEEP_DATA)
    done = start(target, p)
    assert done.complete
    new = zfs.nodes[p.new_dataset]
    assert new.origin == "rpool/FACTORY/r1/system@factory"
    assert (new.mountpoint, new.canmount) == ("/", "noauto")
    assert zfs.bootfs == p.new_dataset
    env = target.boot.grubenv.read()
    assert env.get("bootagent_default") == p.new_environment
    assert env.get(RESET_VAR) is None
    assert env.get("saved_entry") == "keep-me"
    config_ds = zfs.nodes["rpool/config"]
    assert config_ds.files == {"/appliance.conf": "name=factory"}
    assert config_ds.origin == "rpool/FACTORY/r1/config/config@factory"
    assert config_ds.mountpoint == "/etc/appliance"
    assert "rpool/config@tuesday" not in zfs.nodes
    assert "rpool/config.reset" not in zfs.nodes
    # customer data: not touched, not even its snapshots
    after = {n: (v.guid, dict(v.files)) for n, v in zfs.nodes.items() if n.startswith("rpool/customer")}
    assert after == customers_before
    assert "rpool/customer/globex@daily" in zfs.nodes
    assert {"rpool/ROOT/alpha", "rpool/ROOT/beta", "rpool/ROOT/gamma"} <= zfs.nodes.keys()
    store = ResetStore(target.state_directory)
    assert store.plan() is None
    assert store.history().count == 1
    entries = [e for e in target.journal.entries() if e.action == "factory-reset"]
    assert [e.outcome for e in entries] == [Outcome.INTENT, Outcome.OK]
    assert target.journal.pending() == []


def test_erase_all_leaves_the_factory_and_empty_customer_datasets(
    target: ResetTarget, config: Config
) -> None:
    zfs = target.zfs
    assert isinstance(zfs, FakeZfs)
    old_vault = zfs.nodes["rpool/customer/vault"].guid
    old_globex = zfs.nodes["rpool/customer/globex"].guid
    p = plan_for(target, config, ResetMode.ERASE_ALL, secure=True)
    before = len(zfs.calls)
    start(target, p)
    envs = sorted(n for n in zfs.nodes if n.startswith("rpool/ROOT/"))
    assert envs == [p.new_dataset]
    for name in ("rpool/customer/globex", "rpool/customer/globex/db", "rpool/customer/vault"):
        node = zfs.nodes[name]
        assert node.files == {}, name
        assert node.canmount == "on"
    assert zfs.nodes["rpool/customer/globex"].guid != old_globex
    assert zfs.nodes["rpool/customer/globex"].native["compression"] == "zstd"
    assert zfs.nodes["rpool/customer/globex"].user_props["org.bootagent:customer"] == "on"
    assert "rpool/customer/globex@daily" not in zfs.nodes
    vault = zfs.nodes["rpool/customer/vault"]
    assert vault.guid != old_vault
    assert vault.native["encryption"] == "aes-256-gcm"
    assert vault.native["keylocation"] == "file:///var/lib/bootagent/keys/rpool_customer_vault.key"
    key = Path(key_file(target.state_directory, "rpool/customer/vault"))
    assert len(key.read_bytes()) == 32
    assert (key.stat().st_mode & 0o777) == 0o400
    # the unknown is left alone, the baseline and the state too
    assert zfs.nodes["rpool/customer/acme"].files == {"/data": "acme"}
    assert zfs.nodes["rpool/scratch"].files == {"/x": "y"}
    assert FACTORY_HOLD_TAG in zfs.holds("rpool/FACTORY/r1/system@factory")
    assert ("wipe", "rpool") in zfs.calls
    # the encrypted dataset went before anything else changed
    destroys = [c for c in zfs.calls[before:] if c[0] in ("destroy", "clone")]
    assert destroys[0][0] == "destroy"
    assert "rpool/customer/vault" in destroys[0]


STEPS = [
    (ResetMode.KEEP_DATA, {}),
    (ResetMode.KEEP_DATA, {"keep_environments": False}),
    (ResetMode.ERASE_ALL, {}),
]


def fresh_target(tmp_path: Path, name: str, config: Config) -> ResetTarget:
    """A sealed appliance pool of its own, with the config changed since the seal."""
    from bootagent.grubenv import GrubenvFile
    from bootagent.journal import Journal
    from bootagent.model import Actor
    from bootagent.reset.baseline import seal

    zfs = appliance_pool()
    base = tmp_path / name
    (base / "grub").mkdir(parents=True)
    grubenv = GrubenvFile(base / "grub" / "grubenv")
    grubenv.update({"bootagent_default": "beta"})
    journal = Journal(base / "state", actor=Actor.AGENT, clock=lambda: NOW)
    seal(
        zfs,
        config,
        "rpool",
        journal,
        environment="rpool/ROOT/beta",
        release="r1",
        kernel=None,
        clock=lambda: NOW - 1000,
    )
    zfs.nodes["rpool/config"].files = {"/appliance.conf": "name=customised"}
    return make_target(zfs, grubenv, journal, base)


@pytest.mark.parametrize(("mode", "reset"), STEPS)
def test_a_power_cut_after_any_step_resumes_to_the_same_end(
    tmp_path: Path, config: Config, mode: ResetMode, reset: dict[str, bool]
) -> None:
    cfg = with_reset(config, **reset)
    reference = fresh_target(tmp_path, "reference", cfg)
    start(reference, plan_for(reference, cfg, mode))
    steps = len(plan_for(fresh_target(tmp_path, "count", cfg), cfg, mode).steps)
    for cut in range(1, steps):
        target = fresh_target(tmp_path, f"cut{cut}", cfg)

        def power_cut(plan: ResetPlan, at: int = cut) -> None:
            if plan.done == at:
                raise PowerCut

        target.after_step = power_cut
        with pytest.raises(PowerCut):
            start(target, plan_for(target, cfg, mode))
        # until it is done the flag stays set: every GRUB entry comes back into the agent
        assert target.boot.grubenv.read().get(RESET_VAR) == mode.value
        assert ResetStore(target.state_directory).plan() is not None
        target.after_step = lambda _p: None
        assert resume(target) is not None
        assert end_state(target.zfs) == end_state(reference.zfs), f"cut after step {cut}"  # type: ignore[arg-type]
        assert target.boot.grubenv.read().get(RESET_VAR) is None
        assert ResetStore(target.state_directory).history().count == 1


@pytest.mark.parametrize("failing", ["destroy", "clone", "create", "set_bootfs", "set_native"])
def test_a_cut_inside_a_step_is_finished_by_running_it_again(
    tmp_path: Path, config: Config, failing: str
) -> None:
    reference = fresh_target(tmp_path, "reference", config)
    start(reference, plan_for(reference, config, ResetMode.ERASE_ALL))
    target = fresh_target(tmp_path, "cut", config)
    zfs = target.zfs
    assert isinstance(zfs, FakeZfs)
    zfs.fail_next[failing] = PowerCut()
    with pytest.raises(PowerCut):
        start(target, plan_for(target, config, ResetMode.ERASE_ALL))
    resume(target)
    assert end_state(zfs) == end_state(reference.zfs)  # type: ignore[arg-type]


def test_a_second_reset_while_one_is_under_way_is_refused(target: ResetTarget, config: Config) -> None:
    from bootagent.errors import RefusedError

    target.after_step = lambda p: (_ for _ in ()).throw(PowerCut()) if p.done == 2 else None
    with pytest.raises(PowerCut):
        start(target, plan_for(target, config, ResetMode.KEEP_DATA))
    target.after_step = lambda _p: None
    with pytest.raises(RefusedError, match="under way"):
        start(target, plan_for(target, config, ResetMode.ERASE_ALL))


def test_an_unreadable_plan_is_never_taken_for_no_reset(target: ResetTarget) -> None:
    from bootagent.reset.store import UnreadableState

    store = ResetStore(target.state_directory)
    store.dir.mkdir(parents=True)
    (store.dir / "plan.json").write_text('{"version": 1, "mode": "erase-all"')
    with pytest.raises(UnreadableState):
        resume(target)


def test_the_counter_counts_each_reset_once(target: ResetTarget, config: Config) -> None:
    start(target, plan_for(target, config, ResetMode.KEEP_DATA))
    store = ResetStore(target.state_directory)
    last = store.last_plan()
    assert last is not None
    assert last.complete
    store.count_reset(last, 0)  # finishing again (a cut after the counter) does not count twice
    assert store.history().count == 1
    assert os.path.exists(store.dir / "history.json")
