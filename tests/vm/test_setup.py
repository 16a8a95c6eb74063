"""`bootagent setup` on the machine the test bed builds, with the package's own config: the layout is one the
defaults already describe, so it proposes and changes nothing -- twice -- and proposes, without deciding,
the customer dataset nobody has declared."""

from __future__ import annotations

import json

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


@pytest.mark.boots(0)
def test_setup_on_the_test_beds_layout_changes_nothing(booted: Machine) -> None:
    m = booted
    before = m.check("sha256sum /etc/bootagent/bootagent.yaml; zfs list -H -o name -t all | sha256sum")
    dry = m.check("bootagent setup --dry-run")
    assert "the running environment is beta (rpool/ROOT/beta)" in dry
    assert "/boot is inside each environment (one pool)" in dry
    assert "GRUB's writable environment block: /boot/grub/grubenv (ext4 on /dev/vda2)" in dry
    assert "  rpool/customer/acme" in dry  # proposed, not set; globex says it is customer data itself
    assert "rpool/customer/globex" not in dry
    assert dry.rstrip().endswith("nothing to change")
    code, out = m.run("bootagent setup --json 2>/dev/null")
    assert code == 0, out
    data = json.loads(out)
    assert (data["pool"], data["boot_pool"], data["changed"], data["settings"]) == ("rpool", None, [], [])
    assert m.check("bootagent setup").rstrip().endswith("nothing to change: already set up")
    after = m.check("sha256sum /etc/bootagent/bootagent.yaml; zfs list -H -o name -t all | sha256sum")
    assert after == before
