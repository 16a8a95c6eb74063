"""The journal: intent before, outcome after, pending operations, torn lines, trimming."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.errors import RefusedError
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor


def make(tmp_path: Path, **kw: int) -> Journal:
    t = iter(range(1000, 100000))
    return Journal(tmp_path, actor=Actor.AGENT, clock=lambda: float(next(t)), **kw)


def test_operation_records_intent_then_ok(tmp_path: Path) -> None:
    j = make(tmp_path)
    with j.operation("checkpoint", "beta@x", detail="über 'q'", data={"k": "v"}):
        assert [e.outcome for e in j.entries()] == [Outcome.INTENT]
        assert len(j.pending()) == 1
    entries = j.entries()
    assert [e.outcome for e in entries] == [Outcome.INTENT, Outcome.OK]
    assert entries[0].op == entries[1].op
    assert entries[0].actor is Actor.AGENT
    assert entries[0].detail == "über 'q'"
    assert entries[0].data == {"k": "v"}
    assert j.pending() == []


def test_failure_and_refusal_are_recorded(tmp_path: Path) -> None:
    j = make(tmp_path)
    with pytest.raises(RuntimeError), j.operation("destroy", "x"):
        raise RuntimeError("disk on fire")
    with pytest.raises(RefusedError), j.operation("destroy", "y"):
        raise RefusedError("no")
    outcomes = [(e.target, e.outcome, e.detail) for e in j.entries() if e.outcome is not Outcome.INTENT]
    assert outcomes == [("x", Outcome.FAILED, "disk on fire"), ("y", Outcome.REFUSED, "no")]


def test_torn_last_line_is_skipped_and_the_intent_stays_pending(tmp_path: Path) -> None:
    j = make(tmp_path)
    j.record("rollback", "beta", Outcome.INTENT, op="abc")
    with open(j.path, "a", encoding="utf-8") as fh:
        fh.write('{"time": 1, "op": "abc", "outcome": "o')  # power cut mid-write
    assert [e.op for e in j.pending()] == ["abc"]
    assert len(j.entries()) == 1


def test_entries_limit_returns_newest(tmp_path: Path) -> None:
    j = make(tmp_path)
    for i in range(5):
        j.record("a", str(i), Outcome.OK)
    assert [e.target for e in j.entries(2)] == ["3", "4"]


def test_trim_keeps_the_newest(tmp_path: Path) -> None:
    j = make(tmp_path, max_entries=100)
    for i in range(60):
        with j.operation("a", str(i)):
            pass
    entries = j.entries()
    assert len(entries) <= 110
    assert entries[-1].target == "59"
    assert entries[-1].outcome is Outcome.OK


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    assert make(tmp_path / "nope").entries() == []
