"""The shared ZFS contract against the real pool: the same checks the fake passes in the quick tier
(tests/unit/zfs/test_contract.py), run in a guest against bootagent's real backend (pyzfs, channel programs,
the zfs command), so the fake of the unit tests cannot drift from ZFS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.layout import POOL
from testbed.machine import Machine
from tests.contract.zfs_contract import CHECKS

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "zfs_contract.py"


def test_the_real_pool_keeps_the_contract_the_fake_keeps(booted: Machine) -> None:
    m = booted
    m.put_file("/root/zfs_contract.py", CONTRACT.read_bytes())
    scratch = f"{POOL}/contract"
    m.check(f"zfs create -o mountpoint=none {scratch}")
    code, out = m.run(f"python3 /root/zfs_contract.py {scratch} 2>/root/zfs_contract.log", timeout=1800)
    results = json.loads(out)
    assert set(results) == {check.__name__ for check in CHECKS}
    failed = {name: result for name, result in results.items() if result != "ok"}
    assert not failed, json.dumps(failed, indent=2) + "\n" + m.check("tail -n 40 /root/zfs_contract.log")
    assert code == 0
    # every check cleaned up after itself
    assert m.check(f"zfs list -H -o name -r -t all {scratch}").split() == [scratch]
