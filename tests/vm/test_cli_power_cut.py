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


def resolved_by_the_next_change(machine: Machine) -> list[dict[str, str]]:
    """The intents a cut left pending are closed (finished or undone) by the next change, not only listed:
    the next good boot's bless (marking the environment good is a change) or, if it has not, the next
    command. Returns the outcomes recorded for the operations cut short."""
    still = pending(machine)
    if still:
        status = json.loads(machine.check("bootagent status --json"))
        assert {p["op"] for p in status["pending"]} == {p["op"] for p in still}
        machine.check("bootagent checkpoint -n after-cut")
    assert json.loads(machine.check("bootagent status --json"))["pending"] == []
    assert pending(machine) == []
    entries = journal(machine)
    finished = {e["op"] for e in entries if e["outcome"] in ("ok", "refused")}
    cut = {e["op"] for e in entries if e["outcome"] == "intent" and e["op"] not in finished}
    outcomes = [e for e in entries if e["op"] in cut and e["outcome"] != "intent"]
    assert {e["op"] for e in outcomes} == cut
    assert {e["outcome"] for e in outcomes} <= {"resumed", "failed", "rolled-back"}
    return outcomes


def test_power_cut_during_checkpoint(booted: Machine) -> None:
    machine = booted
    cut_after_intent(machine, "bootagent checkpoint -n cut -d 'cut short'", "checkpoint")
    assert after_cut(machine) == "rpool/ROOT/beta"
    made = "rpool/ROOT/beta@cut" in machine.check("zfs list -H -o name -t snapshot rpool/ROOT/beta").split()
    if made:  # the new state: complete, with its metadata
        assert (
            machine.check("zfs get -H -o value org.bootagent:description rpool/ROOT/beta@cut").strip()
            == "cut short"
        )
    outcomes = resolved_by_the_next_change(machine)
    checkpoint = [e for e in outcomes if e["action"] == "checkpoint"]
    # the intent itself may not have reached the disk (the cut can come between its write and its fsync,
    # before any change began): then there is nothing to close
    if checkpoint:
        assert checkpoint[0]["outcome"] == ("resumed" if made else "failed")
    else:
        assert not made


def test_power_cut_during_rollback(booted: Machine) -> None:
    machine = booted
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
        # cut before the switch reached GRUB: the rollback never finished (its intent is pending, or never
        # reached the disk); the next command finishes it (the clone was made: it becomes the default) or
        # closes it (nothing was made)
        assert not [e for e in journal(machine) if e["action"] == "rollback" and e["outcome"] == "ok"]
        made = machine.run("zfs list -H rpool/ROOT/beta-s2")[0] == 0
        outcomes = resolved_by_the_next_change(machine)
        rollback = [e for e in outcomes if e["action"] == "rollback"]
        if rollback:
            assert rollback[0]["outcome"] == ("resumed" if made else "failed")
        if made and rollback:
            assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta-s2"
            assert "bootagent_default=beta-s2" in machine.check("grub-editenv /boot/grub/grubenv list")
            assert machine.check("zfs get -H -o value canmount rpool/ROOT/beta-s2").strip() == "noauto"
        else:
            machine.check("bootagent rollback --steps 2 --name beta-again")
    else:
        # the switch happened: the new environment is complete and the default
        assert machine.check("zpool get -H -o value bootfs rpool").strip() == "rpool/ROOT/beta-s2"
        assert machine.check("zfs get -H -o value origin rpool/ROOT/beta-s2").strip() == "rpool/ROOT/beta@s2"
        resolved_by_the_next_change(machine)
