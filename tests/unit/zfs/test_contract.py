"""The ZFS contract (tests/contract/zfs_contract.py) against the in-memory fake: the fake behaves like ZFS
wherever the domain depends on it. The same checks run against the real pool in the VM tier."""

from __future__ import annotations

import json

import pytest

from bootagent.zfs.interface import ZfsBackend
from tests.contract.zfs_contract import CHECKS, Check, main, run_checks
from tests.fakes import FakeZfs

SCRATCH = "rpool/contract-quick"


def _fake() -> FakeZfs:
    fake = FakeZfs()
    fake.add_fs(SCRATCH)
    return fake


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__ for check in CHECKS])
def test_fake_keeps_the_contract(check: Check) -> None:
    fake = _fake()
    check(fake, SCRATCH)
    assert sorted(fake.nodes) == ["rpool", SCRATCH], "the check left datasets behind"
    assert fake.mounted == {}


def test_fake_keeps_the_contract_with_a_bootfs_and_an_unmountable_scratch() -> None:
    fake = _fake()
    fake.add_fs("rpool/ROOT", mountpoint="none", canmount="off")
    fake.add_fs("rpool/ROOT/debian", mountpoint="/", canmount="noauto")
    fake.bootfs = "rpool/ROOT/debian"
    fake.nodes[SCRATCH].mountpoint = "none"
    results = run_checks(fake, SCRATCH)
    assert set(results.values()) == {"ok"}, results


def test_a_failing_check_is_reported_with_where_it_failed() -> None:
    def check_always_fails(zfs: ZfsBackend, scratch: str) -> None:
        assert zfs.exists(scratch + "/nope"), "nope is missing"

    results = run_checks(_fake(), SCRATCH, [check_always_fails, *CHECKS[:1]])
    failure = results["check_always_fails"]
    assert failure.startswith("FAIL: AssertionError: nope is missing")
    assert "@ test_contract.py:" in failure
    assert "\n" not in failure
    assert results[CHECKS[0].__name__] == "ok"


def test_main_prints_one_json_object_and_exits_0_when_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    assert main([SCRATCH], backend=lambda: fake) == 0
    results = json.loads(capsys.readouterr().out)
    assert results == {check.__name__: "ok" for check in CHECKS}


def test_main_runs_the_named_checks_and_exits_1_on_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    fake.fail_next["clone"] = RuntimeError("injected")
    assert main([SCRATCH, "check_exists", "check_pool_info"], backend=lambda: fake) == 1
    results = json.loads(capsys.readouterr().out)
    assert list(results) == ["check_exists", "check_pool_info"]
    assert results["check_exists"].startswith("FAIL: RuntimeError: injected")
    assert results["check_pool_info"] == "ok"


def test_main_refuses_a_missing_scratch_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    assert main(["rpool/absent"], backend=lambda: fake) == 2
    assert "does not exist" in capsys.readouterr().err
    for argv in (["rpool"], [f"{SCRATCH}@snap"], [SCRATCH, "check_nothing"]):
        with pytest.raises(SystemExit) as exc:
            main(argv, backend=lambda: fake)
        assert exc.value.code == 2
