"""A power cut in the middle of heavy snapshot and write traffic: the pool imports and the system boots."""

from __future__ import annotations

import time

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

STORM = (
    "nohup sh -c 'i=0; while :; do i=$((i+1));"
    " dd if=/dev/urandom of=/var/lib/bootagent/fill-$((i % 8)) bs=64k count=16 2>/dev/null;"
    " zfs snapshot rpool/bootagent@storm-$i; zfs snapshot -r rpool/customer@storm-$i;"
    " done' >/dev/null 2>&1 &"
)


def storm_snapshots(machine: Machine) -> int:
    return int(machine.check("zfs list -H -t snapshot -o name | grep -c storm- || true").strip() or 0)


def test_power_cut_during_snapshot_storm(booted: Machine) -> None:
    machine = booted
    machine.check(STORM)
    deadline = time.monotonic() + 120
    while storm_snapshots(machine) < 10:
        assert time.monotonic() < deadline, "the snapshot storm does not get going"
        time.sleep(2)
    time.sleep(1.5)  # cut in the middle of it, not between loops
    machine.power_cut()

    machine.boot_again()
    machine.wait_for_boot()
    assert machine.check("findmnt -n -o SOURCE /").strip() == "rpool/ROOT/beta"
    assert machine.check("zpool status -x").strip() == "all pools are healthy"
    assert storm_snapshots(machine) > 0
    for customer in ("acme", "globex"):
        machine.check(f"cd /srv/customer/{customer} && sha256sum -c --quiet SHA256SUMS")
