"""The agent's append-only journal of changes: when, what, by whom, and the outcome.

Kept as JSON lines in the persistent state dataset (which no reset erases). Every change writes an INTENT
entry before it starts and an OK/FAILED entry after, so an operation cut short by a power cut is visible as
an intent without an outcome (`pending()`), and can be resumed or rolled back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bootagent.fsutil import atomic_write, fsync_dir
from bootagent.model import Actor

LOG = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"


class Outcome(StrEnum):
    INTENT = "intent"
    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"
    RESUMED = "resumed"


@dataclass(frozen=True)
class JournalEntry:
    time: float
    op: str  # groups the intent and outcome of one operation
    actor: Actor
    action: str
    target: str
    outcome: Outcome
    detail: str = ""
    data: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "time": round(self.time, 3),
                "op": self.op,
                "actor": self.actor.value,
                "action": self.action,
                "target": self.target,
                "outcome": self.outcome.value,
                "detail": self.detail,
                "data": dict(self.data),
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str) -> JournalEntry:
        raw = json.loads(line)
        return cls(
            time=float(raw["time"]),
            op=str(raw["op"]),
            actor=Actor(raw["actor"]),
            action=str(raw["action"]),
            target=str(raw["target"]),
            outcome=Outcome(raw["outcome"]),
            detail=str(raw.get("detail", "")),
            data={str(k): str(v) for k, v in dict(raw.get("data") or {}).items()},
        )


class Journal:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        actor: Actor,
        max_entries: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(directory) / JOURNAL_NAME
        self.actor = actor
        self.max_entries = max_entries
        self.clock = clock

    def append(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(entry.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if new:
            fsync_dir(self.path.parent)

    def record(
        self,
        action: str,
        target: str,
        outcome: Outcome,
        *,
        op: str | None = None,
        detail: str = "",
        data: Mapping[str, str] | None = None,
    ) -> JournalEntry:
        entry = JournalEntry(
            time=self.clock(),
            op=op or uuid.uuid4().hex[:12],
            actor=self.actor,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
            data=dict(data or {}),
        )
        self.append(entry)
        return entry

    @contextlib.contextmanager
    def operation(
        self, action: str, target: str, *, detail: str = "", data: Mapping[str, str] | None = None
    ) -> Iterator[JournalEntry]:
        """Record the intent, run the body, record the outcome (the error text when it fails)."""
        intent = self.record(action, target, Outcome.INTENT, detail=detail, data=data)
        try:
            yield intent
        except BaseException as exc:
            outcome = Outcome.REFUSED if type(exc).__name__ == "RefusedError" else Outcome.FAILED
            self.record(action, target, outcome, op=intent.op, detail=str(exc) or type(exc).__name__)
            raise
        self.record(action, target, Outcome.OK, op=intent.op, detail=detail)
        self._trim()

    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        """The newest `limit` entries, oldest first. Damaged lines (a torn write) are skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        out: list[JournalEntry] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(JournalEntry.from_json(line))
            except (ValueError, KeyError, TypeError):
                LOG.warning("%s:%d: skipping a damaged journal line", self.path, number)
        return out[-limit:] if limit else out

    def pending(self) -> list[JournalEntry]:
        """Intents that never got an outcome (cut short, e.g. by a power cut), oldest first."""
        open_ops: dict[str, JournalEntry] = {}
        for entry in self.entries():
            if entry.outcome is Outcome.INTENT:
                open_ops[entry.op] = entry
            else:
                open_ops.pop(entry.op, None)
        return list(open_ops.values())

    def _trim(self) -> None:
        entries = self.entries()
        if len(entries) <= self.max_entries + self.max_entries // 10:
            return
        keep = entries[-self.max_entries :]
        atomic_write(self.path, "".join(e.to_json() + "\n" for e in keep).encode())
