"""What each reset mode keeps and erases, decided before anything changes."""

from __future__ import annotations

import pytest

from bootagent.config import Config
from bootagent.errors import RefusedError
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import Kind, ResetPlan, StepKind, classify, removal_order, summary
from bootagent.reset.service import prepare
from tests.fakes import FakeZfs
from tests.unit.reset.conftest import NOW, with_reset


def plan(zfs: FakeZfs, config: Config, mode: ResetMode, **kw: object) -> ResetPlan:
    return prepare(zfs, config, "rpool", mode, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


def test_every_dataset_has_exactly_one_class(sealed: FakeZfs, config: Config) -> None:
    kinds = classify(sealed.list_tree("rpool"), config, "rpool").kinds
    assert kinds["rpool"] is Kind.CONTAINER
    assert kinds["rpool/ROOT"] is Kind.CONTAINER
    assert kinds["rpool/ROOT/beta"] is Kind.ENVIRONMENT
    assert kinds["rpool/FACTORY/r1/system"] is Kind.FACTORY
    assert kinds["rpool/config"] is Kind.CONFIG
    assert kinds["rpool/bootagent"] is Kind.STATE
    assert kinds["rpool/customer"] is Kind.CONTAINER  # canmount=off, holds customer data
    assert kinds["rpool/customer/globex"] is Kind.CUSTOMER  # the property
    assert kinds["rpool/customer/globex/db"] is Kind.CUSTOMER  # below a customer dataset
    assert kinds["rpool/customer/vault"] is Kind.CUSTOMER
    assert kinds["rpool/customer/acme"] is Kind.UNCLASSIFIED  # neither configured nor marked
    assert kinds["rpool/scratch"] is Kind.UNCLASSIFIED


def test_configured_customer_datasets_count(sealed: FakeZfs, config: Config) -> None:
    from dataclasses import replace

    cfg = replace(config, customer_datasets=("customer/acme", "customer/gone"))
    classified = classify(sealed.list_tree("rpool"), cfg, "rpool")
    assert classified.kinds["rpool/customer/acme"] is Kind.CUSTOMER
    assert classified.missing_customers == ("rpool/customer/gone",)


def test_keep_data_touches_no_customer_dataset(sealed: FakeZfs, config: Config) -> None:
    p = plan(sealed, config, ResetMode.KEEP_DATA)
    assert p.steps == (StepKind.CLONE, StepKind.SET_DEFAULT, StepKind.RESTORE_CONFIG, StepKind.FINISH)
    assert p.customers == ()
    assert p.environments == ()
    assert p.unclassified == ()
    assert p.new_environment == "factory-r1-20270115"
    assert p.new_dataset == "rpool/ROOT/factory-r1-20270115"
    fates = {i.name: i.fate for i in p.items}
    assert fates["rpool/customer/globex"].startswith("kept, untouched")
    assert fates["rpool/ROOT/alpha"] == "kept"
    assert fates["rpool/config"].startswith("back to factory")
    assert fates["rpool/customer/acme"].startswith("left alone")
    assert fates[p.new_dataset].startswith("new: from factory baseline r1")


def test_keep_data_can_remove_the_old_environments(sealed: FakeZfs, config: Config) -> None:
    p = plan(sealed, with_reset(config, keep_environments=False), ResetMode.KEEP_DATA)
    assert StepKind.REMOVE_ENVIRONMENTS in p.steps
    assert set(p.environments) == {"rpool/ROOT/alpha", "rpool/ROOT/beta", "rpool/ROOT/gamma"}
    assert p.customers == ()


def test_erase_all_destroys_customers_encrypted_first_and_leaves_the_unknown(
    sealed: FakeZfs, config: Config
) -> None:
    p = plan(sealed, config, ResetMode.ERASE_ALL, secure=True)
    assert p.steps[0] is StepKind.CRYPTO_ERASE
    assert p.steps.index(StepKind.SET_DEFAULT) < p.steps.index(StepKind.REMOVE_ENVIRONMENTS)
    assert p.steps[-2:] == (StepKind.WIPE_FREE_SPACE, StepKind.FINISH)
    assert [c.name for c in p.customers] == [
        "rpool/customer/globex",
        "rpool/customer/globex/db",
        "rpool/customer/vault",
    ]
    vault = p.customers[2]
    assert vault.encrypted
    assert vault.guid
    assert p.customers[0].props["compression"] == "zstd"
    assert p.unclassified == ()
    fates = {i.name: i.fate for i in p.items}
    assert fates["rpool/customer/acme"].startswith("left alone")
    assert fates["rpool/scratch"].startswith("left alone")
    assert fates["rpool/customer/vault"].startswith("crypto-erased first")
    assert fates["rpool/bootagent"] == "kept"
    assert fates["rpool/FACTORY/r1/system"] == "kept"


def test_erase_unclassified_is_opt_in(sealed: FakeZfs, config: Config) -> None:
    p = plan(sealed, with_reset(config, erase_unclassified=True), ResetMode.ERASE_ALL)
    assert {r.name for r in p.unclassified} == {"rpool/customer/acme", "rpool/scratch"}
    assert StepKind.DESTROY_UNCLASSIFIED in p.steps


def test_no_baseline_refuses(zfs: FakeZfs, config: Config) -> None:
    with pytest.raises(RefusedError, match="no complete factory baseline"):
        plan(zfs, config, ResetMode.KEEP_DATA)


def test_a_config_dataset_with_datasets_inside_is_refused(sealed: FakeZfs, config: Config) -> None:
    sealed.add_fs("rpool/config/keys")
    with pytest.raises(RefusedError, match="datasets inside it"):
        plan(sealed, config, ResetMode.KEEP_DATA)


def test_clones_are_removed_before_their_origins(sealed: FakeZfs, config: Config) -> None:
    sealed.add_fs("rpool/ROOT/beta-s1", origin="rpool/ROOT/beta@s1", mountpoint="/")
    sealed.add_fs("rpool/ROOT/beta-s1-x", origin="rpool/ROOT/beta-s1@x", mountpoint="/")
    sealed.add_snap("rpool/ROOT/beta-s1@x")
    order = removal_order(
        sealed.list_tree("rpool"), ["rpool/ROOT/beta", "rpool/ROOT/beta-s1", "rpool/ROOT/beta-s1-x"]
    )
    assert order == ("rpool/ROOT/beta-s1-x", "rpool/ROOT/beta-s1", "rpool/ROOT/beta")


def test_a_plan_survives_its_file(sealed: FakeZfs, config: Config) -> None:
    p = plan(sealed, config, ResetMode.ERASE_ALL, reason="testing")
    assert ResetPlan.from_json(p.to_json()) == p
    for broken in ("", "{}", '{"version": 1}', "[1]", '{"version": 99}'):
        with pytest.raises(ValueError, match="plan|Expecting|JSON|version"):
            ResetPlan.from_json(broken)


def test_the_summary_has_a_line_per_dataset_with_its_size(sealed: FakeZfs, config: Config) -> None:
    p = plan(sealed, config, ResetMode.ERASE_ALL)
    lines = summary(p)
    assert len(lines) == len(p.items)
    (vault,) = [line for line in lines if "rpool/customer/vault " in line]
    assert "customer" in vault
    assert "1.0M" in vault
    assert "crypto-erased" in vault
