"""The persisted recovery state: round trips, and what a missing, torn or garbled file means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootagent.recovery.ladder import Attempt, LadderState, Recovered
from bootagent.recovery.store import BootRecord, RecoveryStore


def test_the_ladder_and_the_last_recovery_round_trip(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path / "state")
    assert store.ladder() == LadderState()  # no file: no ladder in progress
    state = LadderState("gamma", 3, "required check web.sh failed", (Attempt("beta", "x"),), started=7)
    store.save_ladder(state)
    assert store.ladder() == state
    done = Recovered("beta", "gamma", 3, "r", (Attempt("beta"),), manual=False, time=9)
    store.end_ladder(done)
    assert store.ladder() == LadderState()
    assert store.last_recovery() == done
    store.save_ladder(state)  # a later ladder keeps the last recovery
    assert store.last_recovery() == done
    assert not list((tmp_path / "state").glob(".*tmp*"))  # atomic writes leave no temp file


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"ladder": {"failing": "gam',
        b"\xff\xfe",
        b"[1, 2]",
        b'{"ladder": {"failures": "3"}}',
        b"x" * 300000,
    ],
)
def test_a_torn_or_garbled_ladder_is_unreadable_never_no_ladder(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ladder.json").write_bytes(content)
    state = RecoveryStore(tmp_path).ladder()
    assert state.unreadable
    assert state.active  # the agent goes to manual intervention rather than start the ladder again


def test_the_boot_record_round_trips_and_a_bad_one_is_ignored(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path)
    assert store.boot() is None
    record = BootRecord("id", "beta", 5, 2, "grubenv was missing", "failed", ("web.sh",), ("disk.sh",))
    store.save_boot(record)
    assert store.boot() == record
    assert record.reason == "required check web.sh failed"
    (tmp_path / "boot.json").write_text(json.dumps({"boot_id": 1}))
    assert store.boot() is None
