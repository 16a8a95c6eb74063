"""Sealing factory baselines and finding them."""

from __future__ import annotations

import pytest

from bootagent.config import Config
from bootagent.errors import NotFoundError, RefusedError
from bootagent.journal import Journal, Outcome
from bootagent.model import FACTORY_HOLD_TAG
from bootagent.reset.baseline import baselines, choose, seal
from tests.fakes import FakeZfs
from tests.unit.reset.conftest import NOW


def test_a_seal_copies_the_environment_and_the_config_and_holds_them(
    sealed: FakeZfs, config: Config, journal: Journal
) -> None:
    (found,) = baselines(sealed, config, "rpool")
    assert found.release == "r1"
    assert found.complete, found.problem
    assert found.system == "rpool/FACTORY/r1/system@factory"
    assert found.configs == (("rpool/config", "rpool/FACTORY/r1/config/config@factory"),)
    assert found.kernel == "6.1.0-30-amd64"
    assert found.sealed == int(NOW - 1000)
    for snap in (found.system, found.configs[0][1]):
        assert FACTORY_HOLD_TAG in sealed.holds(snap)
    # a copy, not a clone: the baseline never depends on an environment that a reset may destroy
    assert sealed.nodes["rpool/FACTORY/r1/system"].origin is None
    assert sealed.nodes["rpool/FACTORY/r1/system"].files == sealed.nodes["rpool/ROOT/beta"].files
    assert sealed.nodes["rpool/FACTORY/r1/config/config"].files == {"/appliance.conf": "name=factory"}
    # no temporary snapshot is left behind in the sources
    assert not [n for n in sealed.nodes if "bootagent-seal" in n]
    (entry,) = [e for e in journal.entries() if e.action == "factory-seal" and e.outcome is Outcome.OK]
    assert entry.target == "r1"


def test_sealing_the_same_release_again_is_refused_without_replace(
    sealed: FakeZfs, config: Config, journal: Journal
) -> None:
    before = dict(sealed.nodes)
    with pytest.raises(RefusedError, match="exists already") as caught:
        seal(sealed, config, "rpool", journal, environment="rpool/ROOT/gamma", release="r1", kernel=None)
    assert "--replace" in (caught.value.hint or "")
    assert sealed.nodes.keys() == before.keys()
    seal(
        sealed,
        config,
        "rpool",
        journal,
        environment="rpool/ROOT/gamma",
        release="r1",
        kernel=None,
        replace=True,
    )
    (found,) = baselines(sealed, config, "rpool")
    assert sealed.nodes["rpool/FACTORY/r1/system"].files == sealed.nodes["rpool/ROOT/gamma"].files
    assert found.complete


def test_a_new_release_seals_beside_the_old_and_is_chosen_by_default(
    sealed: FakeZfs, config: Config, journal: Journal
) -> None:
    seal(
        sealed,
        config,
        "rpool",
        journal,
        environment="rpool/ROOT/gamma",
        release="r2",
        kernel=None,
        clock=lambda: NOW,
    )
    found = baselines(sealed, config, "rpool")
    assert [b.release for b in found] == ["r1", "r2"]
    assert choose(found, None).release == "r2"
    assert choose(found, "r1").release == "r1"
    with pytest.raises(NotFoundError, match="r3"):
        choose(found, "r3")


def test_a_seal_cut_short_is_no_baseline(sealed: FakeZfs, config: Config) -> None:
    sealed.release("rpool/FACTORY/r1/system@factory", FACTORY_HOLD_TAG)  # the last step of a seal
    (found,) = baselines(sealed, config, "rpool")
    assert not found.complete
    assert "not held" in found.problem
    with pytest.raises(RefusedError, match="no complete factory baseline"):
        choose([found], None)


def test_no_baseline_says_how_to_make_one(zfs: FakeZfs, config: Config) -> None:
    with pytest.raises(RefusedError) as caught:
        choose(baselines(zfs, config, "rpool"), None)
    assert "bootagent factory seal" in (caught.value.hint or "")


def test_a_bad_release_name_is_refused_before_anything(
    zfs: FakeZfs, config: Config, journal: Journal
) -> None:
    with pytest.raises(RefusedError, match="not valid"):
        seal(zfs, config, "rpool", journal, environment="rpool/ROOT/beta", release="a b", kernel=None)
    assert zfs.changes() == []
