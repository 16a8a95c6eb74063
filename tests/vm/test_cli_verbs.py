"""Every verb of the `bootagent` command against the real pool in the guest; effects checked with `zfs`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def ba(machine: Machine, args: str, *, code: int = 0) -> str:
    rc, out = machine.run(f"bootagent {args}", timeout=300)
    assert rc == code, f"bootagent {args} exited {rc}, expected {code}:\n{out}"
    return out


def ba_json(machine: Machine, args: str, *, code: int = 0) -> Any:
    rc, out = machine.run(f"bootagent {args} --json 2>/dev/null", timeout=300)
    assert rc == code, f"bootagent {args} --json exited {rc}, expected {code}:\n{out}"
    return json.loads(out)


def zget(machine: Machine, prop: str, dataset: str) -> str:
    return machine.check(f"zfs get -H -p -o value {prop} {dataset}").strip()


def bootfs(machine: Machine) -> str:
    return machine.check("zpool get -H -o value bootfs rpool").strip()


def znames(machine: Machine, kind: str, root: str = "rpool/ROOT") -> set[str]:
    return set(machine.check(f"zfs list -H -o name -t {kind} -r {root}").split())


def booted_root(machine: Machine) -> str:
    return machine.check("findmnt -n -o SOURCE /").strip()


@pytest.fixture
def guest(booted: Machine) -> Machine:
    assert booted_root(booted) == "rpool/ROOT/beta"
    return booted


@pytest.mark.boots(2)
def test_list_status_checkpoint_create_mount_diff_keep_destroy_prune(guest: Machine) -> None:
    m = guest
    # list: what zfs says, with the boot state
    data = ba_json(m, "list")
    assert [e["name"] for e in data["environments"]] == ["alpha", "beta", "gamma"]
    assert (data["active"], data["running"]) == ("beta", "beta")
    beta = data["environments"][1]
    assert [s["snapshot"] for s in beta["snapshots"]] == ["s1", "s2", "s3"]
    assert beta["kernel"] == zget(m, "org.bootagent:kernel", "rpool/ROOT/beta")
    assert "beta   AR" in ba(m, "list -s")
    history = ba_json(m, "list --history")["history"]
    assert [h["name"] for h in history] == ["beta@s3", "beta@s2", "beta@s1"]

    # checkpoint with a description in quotes and non-ASCII
    snap = ba_json(m, "checkpoint -n pre-test -d \"vor dem 'Upgrade' ü\" --created-by package-manager")
    assert snap["dataset"] == "rpool/ROOT/beta@pre-test"
    assert zget(m, "org.bootagent:description", "rpool/ROOT/beta@pre-test") == "vor dem 'Upgrade' ü"
    assert zget(m, "org.bootagent:created-by", "rpool/ROOT/beta@pre-test") == "package-manager"
    # bad names are refused before anything changes
    before = znames(m, "all")
    out = ba(m, "checkpoint -n 'with space'", code=2)
    assert "contains a space" in out
    ba(m, "create 'bét'", code=2)
    assert znames(m, "all") == before

    # create from a snapshot: a clone, the source untouched
    guid = zget(m, "guid", "rpool/ROOT/alpha@s2")
    env = ba_json(m, "create alpha-two alpha@s2 -d 'from s2'")
    assert env["origin"] == "rpool/ROOT/alpha@s2"
    assert zget(m, "origin", "rpool/ROOT/alpha-two") == "rpool/ROOT/alpha@s2"
    assert zget(m, "canmount", "rpool/ROOT/alpha-two") == "noauto"
    assert zget(m, "mountpoint", "rpool/ROOT/alpha-two") == "/"
    assert zget(m, "guid", "rpool/ROOT/alpha@s2") == guid
    # GRUB's menu follows: update-grub ran, the new environment has its own entry
    assert env["grub_menu_updated"] is True
    assert "--id bootagent-be-alpha-two {" in m.check("cat /boot/grub/grub.cfg")
    m.check("grub-script-check /boot/grub/grub.cfg")

    # mount read-only, look, unmount
    mounted = ba_json(m, "mount alpha-two")
    path = mounted["path"]
    assert m.check(f"cat {path}/etc/bootagent-testbed/step").strip() == "2"
    assert m.check(f"cat {path}/etc/bootagent-testbed/marker").strip() == "alpha"
    rc, _ = m.run(f"touch {path}/etc/x")
    assert rc != 0, "a read-only mount accepted a write"
    snap_mount = ba_json(m, "mount beta@s1")["path"]
    assert m.check(f"cat {snap_mount}/etc/bootagent-testbed/step").strip() == "1"
    ba(m, "umount beta@s1")
    ba(m, f"umount {path}")
    assert "alpha-two" not in m.check("findmnt -n -t zfs -o SOURCE")

    # diff: a snapshot against the running environment
    m.check("echo changed > /etc/bootagent-testbed/new-file")
    changes = {(c["change"], c["path"]) for c in ba_json(m, "diff beta@s3 beta")}
    assert ("+", "/etc/bootagent-testbed/new-file") in changes
    assert ("M", "/etc/bootagent-testbed/step") in changes

    # destroy refusals: running + active, keep, cloned-from, factory baseline untouched
    out = ba(m, "destroy beta --yes", code=5)
    assert "running system" in out
    ba(m, "keep gamma@s1")
    assert zget(m, "org.bootagent:keep", "rpool/ROOT/gamma@s1") == "on"
    assert "keep flag" in ba(m, "destroy gamma@s1 --yes", code=5)
    assert "cloned from it: alpha-two" in ba(m, "destroy alpha@s2 --yes", code=5)
    assert "gamma" in {e["name"] for e in ba_json(m, "list")["environments"]}
    ba(m, "activate gamma --once")
    assert "next boot" in ba(m, "destroy gamma --yes", code=5)
    ba(m, "activate beta")
    ba(m, "keep --off gamma@s1")
    # a non-interactive destroy without --yes is refused
    assert "needs a confirmation" in ba(m, "destroy alpha-two", code=5)
    assert ba_json(m, "destroy alpha-two --yes")["destroyed"] == ["rpool/ROOT/alpha-two"]
    assert "rpool/ROOT/alpha-two" not in znames(m, "filesystem")
    assert "alpha-two" not in m.check("cat /boot/grub/grub.cfg")

    # prune: only automatic / package-manager checkpoints, oldest first, the newest stays
    for i in range(4):
        ba(m, f"checkpoint -n auto-{i} --created-by automatic")
    plan = ba_json(m, "prune --dry-run")
    assert plan["would_destroy"] == []  # 5 prunable, keep_count 10
    m.check(
        "printf 'pool: rpool\\ngrubenv: /boot/grub/grubenv\\nretention:\\n  keep_count: 2\\n' > /tmp/two.yaml"
    )
    plan = ba_json(m, "--config /tmp/two.yaml prune --dry-run")
    assert [d["name"] for d in plan["would_destroy"]] == ["beta@pre-test", "beta@auto-0", "beta@auto-1"]
    assert "rpool/ROOT/beta@auto-0" in znames(m, "snapshot")
    ba(m, "--config /tmp/two.yaml prune")
    snaps = znames(m, "snapshot")
    assert {"rpool/ROOT/beta@auto-2", "rpool/ROOT/beta@auto-3", "rpool/ROOT/beta@s1"} <= snaps
    assert not {"rpool/ROOT/beta@pre-test", "rpool/ROOT/beta@auto-0", "rpool/ROOT/beta@auto-1"} & snaps
    assert "org.bootagent.factory" in m.check("zfs holds -H rpool/FACTORY/testbed-1/system@factory")

    # status: the journal of all this, on the persistent dataset
    status = ba_json(m, "status")
    actions = [e["action"] for e in status["journal"]]
    assert "prune" in actions
    assert status["pending"] == []
    assert (
        m.check("findmnt -n -o SOURCE --target /var/lib/bootagent/journal.jsonl").strip() == "rpool/bootagent"
    )
    # a bad config is refused with file:line:column
    m.check("printf 'pool: no\\n' > /tmp/bad.yaml")
    out = ba(m, "--config /tmp/bad.yaml list", code=3)
    assert "/tmp/bad.yaml:1:7" in out


@pytest.mark.boots(2)
def test_rollback_two_steps_roll_forward_and_destructive_rollback(guest: Machine) -> None:
    m = guest
    # checkpoints taken by bootagent itself (the image's own snapshots predate the package, so an
    # environment cloned from them would have no bootagent command to roll forward with)
    m.check("echo 5 > /etc/bootagent-testbed/step")
    ba(m, "checkpoint -n c1")
    m.check("echo 6 > /etc/bootagent-testbed/step")
    ba(m, "checkpoint -n c2")
    m.check("echo 7 > /etc/bootagent-testbed/step")
    result = ba_json(m, "rollback --steps 2")
    assert result == {
        "target": "beta@c1",
        "environment": "beta-c1",
        "destructive": False,
        "destroyed": [],
        "grub_menu_updated": True,
    }
    assert zget(m, "origin", "rpool/ROOT/beta-c1") == "rpool/ROOT/beta@c1"
    assert bootfs(m) == "rpool/ROOT/beta-c1"
    m.reboot()
    m.wait_for_boot()
    assert booted_root(m) == "rpool/ROOT/beta-c1"
    assert m.check("cat /etc/bootagent-testbed/step").strip() == "5"
    # nothing was lost: beta and its snapshots are all there
    assert {"rpool/ROOT/beta@c1", "rpool/ROOT/beta@c2", "rpool/ROOT/beta@s3"} <= znames(m, "snapshot")

    forward = ba_json(m, "rollforward")
    assert forward == {"environment": "beta", "source": "beta", "created": False}
    m.reboot()
    m.wait_for_boot()
    assert booted_root(m) == "rpool/ROOT/beta"
    assert m.check("cat /etc/bootagent-testbed/step").strip() == "7"

    # destructive, in place, on an environment that is not running; refused on the running one
    assert "running system" in ba(m, "rollback --steps 1 --destroy-newer --yes", code=5)
    out = ba_json(m, "rollback alpha --steps 2 --destroy-newer --yes")
    assert out["destructive"] is True
    assert out["destroyed"] == ["rpool/ROOT/alpha@s3"]
    assert "rpool/ROOT/alpha@s3" not in znames(m, "snapshot")
    path = ba_json(m, "mount alpha")["path"]
    assert m.check(f"cat {path}/etc/bootagent-testbed/step").strip() == "2"
    ba(m, "umount alpha")
