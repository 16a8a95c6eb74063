"""The journal: intent before, outcome after, pending operations, damaged lines, reading the tail, trims."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootagent.errors import RefusedError
from bootagent.journal import BLOCK, MIN_LINE, Journal, JournalDamage, JournalEntry, Outcome
from bootagent.model import Actor


def make(tmp_path: Path, **kw: int) -> Journal:
    t = iter(range(1000, 1000000))
    return Journal(tmp_path, actor=Actor.AGENT, clock=lambda: float(next(t)), **kw)


def entry(
    target: str = "t", outcome: Outcome = Outcome.OK, op: str = "op1", detail: str = ""
) -> JournalEntry:
    return JournalEntry(1.0, op, Actor.CLI, "checkpoint", target, outcome, detail)


def raw(j: Journal, *lines: bytes) -> None:
    """Bytes into the journal file as they are, the way a crash or another program leaves them."""
    j.path.parent.mkdir(parents=True, exist_ok=True)
    with open(j.path, "ab") as fh:
        fh.write(b"".join(lines))


def sidecars(j: Journal) -> list[str]:
    return sorted(os.listdir(j.pending_dir)) if j.pending_dir.is_dir() else []


class PowerCut(BaseException):
    """Stands for the machine losing power: not an Exception, so no handler in the code records it."""


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every os.pread() made (the journal reads only through it)."""
    sizes: list[int] = []
    real = os.pread

    def spy(fd: int, size: int, offset: int) -> bytes:
        data = real(fd, size, offset)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", spy)
    return sizes


# --- operations ----------------------------------------------------------------------------------------
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
    assert sidecars(j) == []
    assert j.damage() == JournalDamage()


def test_failure_and_refusal_are_recorded(tmp_path: Path) -> None:
    j = make(tmp_path)
    with pytest.raises(RuntimeError), j.operation("destroy", "x"):
        raise RuntimeError("disk on fire")
    with pytest.raises(RefusedError), j.operation("destroy", "y"):
        raise RefusedError("no")
    outcomes = [(e.target, e.outcome, e.detail) for e in j.entries() if e.outcome is not Outcome.INTENT]
    assert outcomes == [("x", Outcome.FAILED, "disk on fire"), ("y", Outcome.REFUSED, "no")]
    assert j.pending() == []


def test_nested_operations_do_not_wait_on_each_other(tmp_path: Path) -> None:
    j = make(tmp_path)
    with j.operation("rollback", "beta") as outer, j.operation("create", "beta-1") as inner:
        assert [e.op for e in j.pending()] == [outer.op, inner.op]
    assert j.pending() == []


def test_text_that_splits_lines_elsewhere_stays_in_one_entry(tmp_path: Path) -> None:
    j = make(tmp_path)
    odd = "a\u2028b\u2029c\x85d\x1ce\rf\x00g"
    surrogate = "no such file: /mnt/\udcff"  # an undecodable file name, as os.fsdecode gives it
    j.record("a", "t", Outcome.OK, detail=odd)
    j.record("a", "t", Outcome.OK, detail=surrogate)
    assert [e.detail for e in j.entries()] == [odd, surrogate]
    assert j.path.read_bytes().count(b"\n") == 2


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    j = make(tmp_path / "nope")
    assert j.entries() == []
    assert j.pending() == []
    assert j.damage() == JournalDamage()


def test_entries_limit_returns_newest(tmp_path: Path) -> None:
    j = make(tmp_path)
    for i in range(5):
        j.record("a", str(i), Outcome.OK)
    assert [e.target for e in j.entries(2)] == ["3", "4"]
    assert [e.target for e in j.entries(0)] == ["0", "1", "2", "3", "4"]


# --- torn and damaged lines ----------------------------------------------------------------------------
def test_torn_last_line_is_skipped_and_the_intent_stays_pending(tmp_path: Path) -> None:
    j = make(tmp_path)
    j.record("rollback", "beta", Outcome.INTENT, op="abc")
    at = j.path.stat().st_size
    raw(j, b'{"time": 1, "op": "abc", "outcome": "o')  # power cut mid-write
    assert [e.op for e in j.pending()] == ["abc"]
    assert len(j.entries()) == 1
    assert j.damage() == JournalDamage(torn_tail=at)


def test_an_entry_after_a_torn_line_starts_a_new_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = make(tmp_path)
    j.record("rollback", "beta", Outcome.INTENT, op="abc")
    at = j.path.stat().st_size
    raw(j, b'{"time": 1, "op": "abc", "outc')
    with caplog.at_level(logging.WARNING, logger="bootagent.journal"):
        resumed = make(tmp_path).close_pending(j.pending()[0], Outcome.RESUMED, "finished after the cut")
    assert "has no newline" in caplog.text
    assert f"at byte {at}" in caplog.text
    entries = j.entries()
    assert [(e.op, e.outcome) for e in entries] == [("abc", Outcome.INTENT), ("abc", Outcome.RESUMED)]
    assert entries[-1] == resumed
    assert j.damage() == JournalDamage(unreadable=1, offsets=(at,))
    assert "1 unreadable line skipped (at byte" in j.damage().summary()
    assert j.pending() == []


def test_a_whole_last_line_without_its_newline_is_an_entry(tmp_path: Path) -> None:
    j = make(tmp_path)
    raw(j, entry("a").line(), entry("b").line()[:-1])
    assert [e.target for e in j.entries()] == ["a", "b"]
    assert not j.damage().damaged
    j.record("a", "c", Outcome.OK)
    assert [e.target for e in j.entries()] == ["a", "b", "c"]


GOOD = {"time": 5, "op": "x", "actor": "cli", "action": "a", "target": "t", "outcome": "ok"}


def line_with(**changes: object) -> bytes:
    fields = {**GOOD, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not None}).encode() + b"\n"


BAD_LINES = {
    "a 5000-digit time": b'{"time": ' + b"1" * 5000 + b', "op": "x"}\n',
    "a time too big for a float": line_with(time=10**400),
    "1e400": line_with(time=1e400),  # json gives inf
    "NaN": line_with().replace(b'"time": 5', b'"time": NaN'),
    "-Infinity": line_with().replace(b'"time": 5', b'"time": -Infinity'),
    "a NaN in the data": line_with().replace(b'"outcome"', b'"data": {"k": NaN}, "outcome"'),
    "deep nesting": b'{"data": ' + b"[" * 100000 + b"]" * 100000 + b"}\n",
    "deep nesting alone": b"[" * 100000 + b"\n",
    "a 5000-digit number in the data": line_with().replace(b"}", b', "data": {"k": ' + b"9" * 5000 + b"}}"),
    "time as text": line_with(time="5"),
    "time as a boolean": line_with(time=True),
    "an unknown actor": line_with(actor="cron"),
    "an unknown outcome": line_with(outcome="maybe"),
    "data as a list": line_with(data=["k", "v"]),
    "data with a number": line_with(data={"k": 1}),
    "detail as a number": line_with(detail=3),
    "no op": line_with(op=None),
    "an empty op": line_with(op=""),
    "not an object": b'["time", 5]\n',
    "a bare number": b"5\n",
    "invalid UTF-8": line_with(target="\udcff").replace(b'"\\udcff"', b'"\xff\xfe"'),
    "a NUL outside a string": b"\x00" + line_with(),
    "a raw NUL inside a string": line_with(target="a\x00b").replace(b"\\u0000", b"\x00"),
    "NULs only": b"\x00" * 300 + b"\n",
    "UTF-16": line_with().rstrip().decode().encode("utf-16") + b"\n",
    "a byte-order mark": b"\xef\xbb\xbf" + line_with(),
    "half a line": line_with()[:40] + b"\n",
}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_line_that_is_no_entry_is_skipped_and_counted(tmp_path: Path, bad: bytes) -> None:
    j = make(tmp_path)
    raw(j, entry("before").line())
    at = j.path.stat().st_size
    raw(j, bad, entry("after").line())
    assert [e.target for e in j.entries()] == ["before", "after"]
    assert j.damage() == JournalDamage(unreadable=1, offsets=(at,))
    assert j.pending() == []
    with j.operation("checkpoint", "new"):  # the trim after it reads this journal too
        pass
    assert [e.target for e in j.entries(2)] == ["new", "new"]


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_from_json_raises_value_error_only(bad: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the damage
        JournalEntry.from_json(bad.rstrip(b"\n"))


def test_a_line_of_escaped_nul_is_an_entry() -> None:
    assert JournalEntry.from_json(line_with(target="a\x00b")).target == "a\x00b"


def test_entries_limit_counts_entries_not_damaged_lines(tmp_path: Path) -> None:
    j = make(tmp_path)
    raw(j, entry("a").line(), entry("b").line(), b"junk\n", b"\n", b"more junk\n", entry("c").line())
    assert [e.target for e in j.entries(2)] == ["b", "c"]
    assert j.damage().unreadable == 2


def test_damage_keeps_the_newest_offsets_only(tmp_path: Path) -> None:
    j = make(tmp_path)
    raw(j, b"junk\n" * 30)
    assert j.entries() == []
    damage = j.damage()
    assert damage.unreadable == 30
    assert damage.offsets == tuple(range(20 * 5, 30 * 5, 5))
    assert damage.summary().startswith("30 unreadable lines skipped (at byte 100, 105,")
    assert damage.summary().endswith(", ...)")


def test_the_warning_for_a_damaged_line_is_given_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = make(tmp_path)
    raw(j, b"junk\n", entry().line())
    with caplog.at_level(logging.WARNING, logger="bootagent.journal"):
        j.entries()
        j.entries()
    assert len(caplog.records) == 1
    assert "1 unreadable line skipped (at byte 0)" in caplog.records[0].getMessage()


def test_no_entry_line_is_shorter_than_min_line() -> None:
    actor = min(Actor.__members__.values(), key=lambda a: len(a.value))
    outcome = min(Outcome.__members__.values(), key=lambda o: len(o.value))
    shortest = JournalEntry(0.0, "x", actor, "", "", outcome)
    assert len(shortest.line()) >= MIN_LINE


# --- reading only the tail -----------------------------------------------------------------------------
def big_journal(j: Journal, lines: int) -> list[bytes]:
    """A journal whose first line does not parse (a number too big), then `lines` entries."""
    written = [entry(str(i), op=f"op{i}", detail="x" * (i % 300)).line() for i in range(lines)]
    raw(j, b'{"time": ' + b"9" * 5000 + b"}\n", *written)
    return written


def test_entries_limit_reads_only_the_tail(tmp_path: Path, reads: list[int]) -> None:
    j = make(tmp_path)
    big_journal(j, 20000)
    assert j.path.stat().st_size > 40 * BLOCK
    assert [e.target for e in j.entries(10)] == [str(i) for i in range(19990, 20000)]
    assert sum(reads) <= BLOCK
    assert j.damage() == JournalDamage()  # the unreadable first line was never looked at
    assert len(j.entries()) == 20000
    assert j.damage() == JournalDamage(unreadable=1, offsets=(0,))


def test_lines_across_blocks_read_back_whole(tmp_path: Path) -> None:
    j = make(tmp_path)
    long = entry("long", detail="é" * (3 * BLOCK)).line()
    written = [entry(str(i), detail="y" * (i * 37 % 2000)).line() for i in range(300)]
    raw(j, *written[:150], long, *written[150:])
    entries = j.entries()
    assert [e.line() for e in entries] == [*written[:150], long, *written[150:]]
    assert [e.line() for e in j.entries(160)] == [*written[141:150], long, *written[150:]]


def test_pending_reads_the_sidecars_and_a_few_bytes(tmp_path: Path, reads: list[int]) -> None:
    j = make(tmp_path)
    j.record("rollback", "beta", Outcome.INTENT, op="old")
    big_journal(j, 20000)
    with j.operation("checkpoint", "beta@now") as now:
        reads.clear()
        assert [e.op for e in j.pending()] == ["old", now.op]
        assert sum(reads) <= 2 * (len(now.line()) + 1)


# --- sidecars and the cuts around them -----------------------------------------------------------------
def test_a_cut_between_the_sidecar_and_the_intent_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = make(tmp_path)
    j.record("a", "t", Outcome.OK)

    def cut(self: Journal, fd: int, line: bytes) -> int:
        raise PowerCut

    with monkeypatch.context() as m:
        m.setattr(Journal, "_write_line", cut)
        with pytest.raises(PowerCut), j.operation("checkpoint", "never-started"):
            pytest.fail("the body ran without its intent in the journal")
    assert len(sidecars(j)) == 1
    after = make(tmp_path)
    assert after.pending() == []  # it never started: its intent is not in the journal
    assert [e.target for e in after.entries()] == ["t"]
    after.record("a", "u", Outcome.OK)  # the next writer removes the stale sidecar
    assert sidecars(j) == []


def test_a_cut_between_the_outcome_line_and_the_sidecar_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = make(tmp_path)
    real = Path.unlink

    def cut(self: Path, missing_ok: bool = False) -> None:
        if self.parent == j.pending_dir:
            raise PowerCut
        real(self, missing_ok=missing_ok)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", cut)
        with pytest.raises(PowerCut), j.operation("checkpoint", "done"):
            pass
    assert len(sidecars(j)) == 1
    after = make(tmp_path)
    assert after.pending() == []  # the outcome is in the journal: closed
    assert [e.outcome for e in after.entries()] == [Outcome.INTENT, Outcome.OK]
    with after.operation("checkpoint", "next") as nxt:
        assert [e.op for e in after.pending()] == [nxt.op]
        assert sidecars(j) == [f"{nxt.op}.json"]  # the stale one went
    assert sidecars(j) == []


def test_a_cut_while_closing_before_the_outcome_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = make(tmp_path)
    real = Journal._write_line

    def cut(self: Journal, fd: int, line: bytes) -> int:
        if b'"intent"' not in line:
            raise PowerCut
        return real(self, fd, line)

    with monkeypatch.context() as m:
        m.setattr(Journal, "_write_line", cut)
        with pytest.raises(PowerCut), j.operation("checkpoint", "cut"):
            pass
    after = make(tmp_path)
    [intent] = after.pending()  # the sidecar says it was closing, but no outcome line got there
    assert intent.target == "cut"
    after.record("a", "other", Outcome.OK)  # other writes, lines move past the recorded place
    assert after.pending() == [intent]
    done = after.close_pending(intent, Outcome.ROLLED_BACK, "undone after the cut")
    assert after.pending() == []
    assert (done.op, done.outcome, done.detail) == (intent.op, Outcome.ROLLED_BACK, "undone after the cut")
    assert Outcome.ROLLED_BACK.value == "rolled-back"


def test_a_torn_closing_mark_reads_as_none(tmp_path: Path) -> None:
    j = make(tmp_path)
    intent = j.record("a", "t", Outcome.INTENT)
    [name] = sidecars(j)
    with open(j.pending_dir / name, "ab") as fh:
        fh.write(b'{"outcome": "{\\"action')  # the cut came while the mark was written
    assert j.pending() == [intent]
    j.record("a", "other", Outcome.OK)
    assert j.pending() == [intent]
    j.close_pending(intent, Outcome.RESUMED)
    assert j.pending() == []
    assert sidecars(j) == []


def test_close_pending_needs_an_outcome(tmp_path: Path) -> None:
    j = make(tmp_path)
    intent = j.record("a", "t", Outcome.INTENT)
    with pytest.raises(ValueError, match="outcome"):
        j.close_pending(intent, Outcome.INTENT)
    assert j.pending() == [intent]


def test_a_second_intent_of_one_op_replaces_the_first(tmp_path: Path) -> None:
    j = make(tmp_path)
    j.record("a", "first", Outcome.INTENT, op="same")
    second = j.record("a", "second", Outcome.INTENT, op="same")
    assert j.pending() == [second]


@pytest.mark.parametrize("op", ["a/b ü", "../x", ".hidden", "=3d", "x" * 500, "\udcff"])
def test_any_op_name_gets_a_sidecar(tmp_path: Path, op: str) -> None:
    j = make(tmp_path)
    j.record("a", "t", Outcome.INTENT, op=op)
    assert [e.op for e in j.pending()] == [op]
    assert all("/" not in name and not name.startswith(".") for name in sidecars(j))
    j.record("a", "t", Outcome.OK, op=op)
    assert j.pending() == []
    assert sidecars(j) == []


def test_a_damaged_sidecar_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    j = make(tmp_path)
    intent = j.record("a", "t", Outcome.INTENT)
    (j.pending_dir / "junk.json").write_bytes(b"\xff[[[")
    (j.pending_dir / "list.json").write_text('{"intent": 5, "at": "x"}')
    (j.pending_dir / ".leftover.json.tmp-1").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="bootagent.journal"):
        assert j.pending() == [intent]
    assert "junk.json: damaged, ignored" in caplog.text
    j.close_pending(intent, Outcome.FAILED)
    assert sidecars(j) == ["junk.json", "list.json"]  # left for a person to look at


def test_pending_of_an_older_journal_without_sidecars(tmp_path: Path) -> None:
    j = make(tmp_path)
    raw(
        j,
        entry("done", Outcome.INTENT, op="a").line(),
        entry("open", Outcome.INTENT, op="b").line(),
        entry("done", Outcome.OK, op="a").line(),
    )
    assert not j.pending_dir.exists()
    assert [e.op for e in j.pending()] == ["b"]  # read the slow way, until the next write
    j.record("x", "y", Outcome.OK)
    assert sidecars(j) == ["b.json"]
    assert [e.op for e in j.pending()] == ["b"]
    j.record("x", "open", Outcome.RESUMED, op="b")
    assert j.pending() == []


# --- trimming ------------------------------------------------------------------------------------------
def test_trim_keeps_the_newest(tmp_path: Path) -> None:
    j = make(tmp_path, max_entries=100)
    for i in range(60):
        with j.operation("a", str(i)):
            pass
    entries = j.entries()
    assert 100 <= len(entries) <= 110
    assert entries[-1].target == "59"
    assert entries[-1].outcome is Outcome.OK


def test_trim_keeps_pending_intents(tmp_path: Path) -> None:
    j = make(tmp_path, max_entries=20)
    old = j.record("rollback", "cut-long-ago", Outcome.INTENT)
    for i in range(15):
        with j.operation("a", str(i)):
            pass
    with j.operation("a", "mid") as mid:
        for i in range(15):
            with j.operation("a", f"inner{i}"):
                pass
        entries = j.entries()
        assert len(entries) <= 24
        assert entries[0] == old  # moved in front of the newest lines
        assert mid in entries
        assert j.pending() == [old, mid]
    assert j.pending() == [old]
    j.close_pending(old, Outcome.FAILED, "given up")
    assert j.pending() == []
    assert sidecars(j) == []


def test_trim_is_decided_from_the_size_when_small(tmp_path: Path, reads: list[int]) -> None:
    j = make(tmp_path, max_entries=100)
    with j.operation("a", "b"):
        pass
    reads.clear()
    j._trim()
    assert reads == []


def test_trim_copies_lines_without_parsing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = make(tmp_path, max_entries=100)
    deep = b"[" * 100000 + b"\n"
    j.record("a", "first", Outcome.OK)
    raw(j, deep, *(entry(str(i), op=f"o{i}").line() for i in range(200)), deep)
    parsed: list[bytes] = []
    real = JournalEntry.from_json

    def spy(line: str | bytes) -> JournalEntry:
        parsed.append(line if isinstance(line, bytes) else line.encode())
        return real(line)

    monkeypatch.setattr(JournalEntry, "from_json", spy)
    with j.operation("checkpoint", "beta@x"):  # the checkpoint that used to die in the trim
        pass
    assert all(b'"outcome": "intent"' in line for line in parsed)  # only the sidecars' intents
    lines = j.path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 100
    assert lines[-3] == deep  # copied as it was
    assert [e.target for e in j.entries(2)] == ["beta@x", "beta@x"]


# --- whatever the file holds ---------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    garbage=st.binary(max_size=600)
    | st.lists(
        st.sampled_from([b"\n", b"{", b"}", b'"', b"\x00", b"\xff", b"[", b"1e999", b"NaN"]), max_size=60
    ).map(b"".join),
    sidecar=st.none() | st.binary(max_size=200),
)
def test_any_bytes_in_the_files_never_break_the_journal(garbage: bytes, sidecar: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        j = make(Path(tmp))
        j.record("a", "before", Outcome.OK)
        raw(j, garbage)
        if sidecar is not None:
            (j.pending_dir / "x.json").write_bytes(sidecar)
        j.entries()
        j.entries(3)
        j.pending()
        j.damage().summary()
        with j.operation("checkpoint", "new") as intent:
            assert intent in j.pending()
        assert [(e.target, e.outcome) for e in j.entries(1)] == [("new", Outcome.OK)]
        assert [e.op for e in j.entries(2)] == [intent.op, intent.op]
        assert intent not in j.pending()
        assert "before" in [e.target for e in j.entries()]
