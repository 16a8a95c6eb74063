"""A power cut in the middle of a checkpoint and of a rollback: the pool imports, the system boots into the
old or the new state, and the journal shows what was cut short."""

from __future__ import annotations

import json

import pytest

from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

JOURNAL = "/var/lib/bootagent/journal.jsonl"


def cut_after_intent(machine: Machine, command: str, action: str) -> None:
    """Start `command` in the guest and pull the plug as soon as its intent is in the journal."""
    # the file must be on disk before the cut: a fresh, unsynced file would vanish with it
    machine.check(f"touch {JOURNAL}; sync; wc -l < {JOURNAL} > /tmp/lines")
    machine.sendline(
        f"({command} >/dev/null 2>&1 &); "
        f"while ! tail -n +$(( $(cat /tmp/lines) + 1 )) {JOURNAL} "
        f'| grep -q \'"action": "{action}".*"intent"\';'
        " do :; done; echo CUT''NOW"
    )
    machine.expect("CUTNOW", 300)
    machine.power_cut()


def after_cut(machine: Machine) -> str:
    machine.boot_again()
    machine.wait_for_boot()
    assert machine.check("zpool status -x").strip() == "all pools are healthy"
    return machine.check("findmnt -n -o SOURCE /").strip()


def journal(machine: Machine) -> list[dict[str, str]]:
    """The journal file itself (environments cloned from snapshots that predate the package have no
    bootagent command). A torn last line is skipped, as bootagent does."""
    out = []
    for line in machine.check(f"cat {JOURNAL}").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def pending(machine: Machine) -> list[dict[str, str]]:
    """Intents without an outcome."""
    entries = journal(machine)
    open_ops: dict[str, dict[str, str]] = {}
    for entry in entries:
        if entry["outcome"] == "intent":
            open_ops[entry["op"]] = entry
        else:
            open_ops.pop(entry["op"], None)
    return list(open_ops.values())


def test_power_cut_during_checkpoint(machine: Machine) -> None:
    machine.start()
    machine.wait_for_boot()
    cut_after_intent(machine, "bootagent checkpoint -n cut -d 'cut short'", "checkpoint")
    assert after_cut(machine) == "rpool/ROOT/beta"
    snaps = machine.check("zfs list -H -o name -t snapshot rpool/ROOT/beta").split()
    if "rpool/ROOT/beta@cut" in snaps:  # the new state: complete, with its metadata
        assert (
            machine.check("zfs get -H -o value org.bootagent:description rpool/ROOT/beta@cut").strip()
            == "cut short"
        )
    else:  # the old state: the journal never says it finished (the intent itself may not have reached
        # the disk: the cut can come between its write and its fsync, before any change began)
        assert not [e for e in journal(machine) if e["action"] == "checkpoint" and e["outcome"] == "ok"]
    # either way the command works again
    machine.check("bootagent checkpoint -n after-cut")


def test_power_cut_during_rollback(machine: Machine) -> None:
    machine.start()
    machine.wait_for_boot()
    cut_after_intent(machine, "bootagent rollback --steps 2", "rollback")
    root = after_cut(machine)
    assert root in {"rpool/ROOT/beta", "rpool/ROOT/beta-s2"}
    step = machine.check("cat /etc/bootagent-testbed/step").strip()
    assert step == ("4" if root == "rpool/ROOT/beta" else "2")
    # nothing of the old state was lost
    assert {"rpool/ROOT/beta@s1", "rpool/ROOT/beta@s2", "rpool/ROOT/beta@s3"} <= set(
        machine.check("zfs list -H -o name -t snapshot -r rpool/ROOT").split()
    )
    if root == "rpool/ROOT/beta":
        # cut before the switch: the rollback never finished (it is pending, or its intent never reached
        # the disk), the default is still beta, and it can be done again
        assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta"
        assert not [e for e in journal(machine) if e["action"] == "rollback" and e["outcome"] == "ok"]
        status = json.loads(machine.check("bootagent status --json"))
        assert {p["action"] for p in pending(machine)} == {p["action"] for p in status["pending"]}
        machine.check("bootagent rollback --steps 2 --name beta-again")
    else:
        # the switch happened: the new environment is complete and the default
        assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta-s2"
        assert machine.check("zfs get -H -o value origin rpool/ROOT/beta-s2").strip() == "rpool/ROOT/beta@s2"
