"""apt and bootagent in the guest: the package's own apt hooks take one checkpoint per apt run, described with
the packages it changes; rolling back to it and booting gives the system without the package."""

from __future__ import annotations

import json
import re

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

PACKAGE = "bootagent-demo"

# a package made in the guest (the guest has no network): apt installs a local .deb like any other
MAKE_DEB = f"""set -e
d=/tmp/{PACKAGE}
rm -rf $d && mkdir -p $d/DEBIAN $d/usr/bin
printf 'Package: {PACKAGE}\\nVersion: 1.0-1\\nArchitecture: all\\nMaintainer: test <test@localhost>\\n\
Description: a package for the apt hook scenario\\n' > $d/DEBIAN/control
printf '#!/bin/sh\\necho demo\\n' > $d/usr/bin/{PACKAGE}
chmod 0755 $d/usr/bin/{PACKAGE}
dpkg-deb --root-owner-group --build $d /tmp/{PACKAGE}_1.0-1_all.deb >/dev/null
"""


def apt_checkpoints(m: Machine) -> list[dict[str, str]]:
    data = json.loads(m.check("bootagent list beta --json 2>/dev/null"))
    return [s for s in data["snapshots"] if s["created_by"] == "package-manager"]


@pytest.mark.boots(1)
def test_apt_install_takes_one_checkpoint_and_rolling_back_to_it_removes_the_package(booted: Machine) -> None:
    m = booted
    assert m.check("findmnt -n -o SOURCE /").strip() == "rpool/ROOT/beta"
    assert "bootagent apt-hook packages" in m.check("cat /etc/apt/apt.conf.d/80bootagent")
    assert apt_checkpoints(m) == []
    # the daily prune is scheduled by the package's timer, and status says when
    assert m.check("systemctl is-enabled bootagent-prune.timer").strip() == "enabled"
    status = json.loads(m.check("bootagent status --json 2>/dev/null"))
    assert status["retention"]["next_run"], status["retention"]
    m.check(MAKE_DEB)

    out = m.check(f"apt-get install -y /tmp/{PACKAGE}_1.0-1_all.deb 2>&1", timeout=600)
    print(out)
    assert m.check(f"{PACKAGE}").strip() == "demo"
    [cp] = apt_checkpoints(m)
    assert cp["snapshot"].startswith("apt-")
    assert f"install {PACKAGE} 1.0-1" in cp["description"]  # from the Pre-Install-Pkgs list (version 3)
    label = cp["name"]  # beta@apt-...
    assert f"bootagent: checkpoint {label}" in out
    assert re.search(rf"bootagent: apt run after checkpoint {re.escape(label)}: dpkg left every package", out)
    journal = m.check("grep -F '\"package-manager\"' /var/lib/bootagent/journal.jsonl")
    assert '"outcome": "ok"' in journal

    # a second apt run is another checkpoint (and only one)
    out = m.check(f"apt-get remove -y {PACKAGE} 2>&1", timeout=600)
    print(out)
    second = [c for c in apt_checkpoints(m) if c["snapshot"] != cp["snapshot"]]
    assert len(second) == 1
    assert f"remove {PACKAGE} 1.0-1" in second[0]["description"]
    m.check(f"apt-get install -y /tmp/{PACKAGE}_1.0-1_all.deb", timeout=600)
    assert len(apt_checkpoints(m)) == 3

    # the fleet's view: the package's textfile unit, where node_exporter would read it
    assert m.check("systemctl is-enabled bootagent-textfile.timer").strip() == "enabled"
    m.check("mkdir -p /var/lib/prometheus/node-exporter && systemctl start bootagent-textfile.service")
    prom = m.check("cat /var/lib/prometheus/node-exporter/bootagent.prom")
    assert 'bootagent_checkpoints{created_by="package-manager"} 3' in prom, prom
    assert "bootagent_boot_count 0" in prom
    assert 'bootagent_pool_healthy{pool="rpool"} 1' in prom

    # back to the state before the first apt run, as a new environment, booted
    out = m.check(f"bootagent rollback --to {label} --yes 2>&1", timeout=600)
    print(out)
    new = json.loads(m.check("bootagent list --json 2>/dev/null"))["active"]
    assert new != "beta"
    m.reboot()
    m.wait_for_boot()
    assert m.check("findmnt -n -o SOURCE /").strip() == f"rpool/ROOT/{new}"
    code, _ = m.run(f"dpkg -s {PACKAGE}")
    assert code != 0, "the package is still installed after the rollback"
    assert m.run(f"test -e /usr/bin/{PACKAGE}")[0] != 0
    # beta itself is untouched: the package is still installed there
    listing = m.check(f"bootagent mount beta /mnt/b && ls /mnt/b/usr/bin/{PACKAGE}; bootagent umount /mnt/b")
    assert f"/mnt/b/usr/bin/{PACKAGE}" in listing
