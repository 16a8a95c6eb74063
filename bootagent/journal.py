"""The agent's append-only journal of changes: when, what, by whom, and the outcome.

Kept as JSON lines in the persistent state dataset (which no reset erases). Every change writes an INTENT
entry before it starts and an outcome entry after, so an operation cut short by a power cut is visible as
an intent without an outcome (`pending()`), and can be resumed or rolled back (`close_pending()`).

Beside journal.jsonl:
  pending/<op>.json  one small file (a sidecar) per open operation, synced before the intent line is
                     appended and removed after the outcome line is synced, so `pending()` lists a directory
                     instead of reading the journal. It holds the intent's line and where that line starts,
                     and, while the operation closes, the outcome's line and where it goes: one read at each
                     offset settles the two cuts that leave a sidecar behind (before the intent line: it never
                     started; after the outcome line: it is closed). Writers remove such stale sidecars.
  journal.lock       writers hold an flock on it while they write, so the offsets they record are exact and a
                     trim never loses a concurrent append. Readers take no lock.

Reading is defensive: the file is read from its end, only as far as `entries(limit)` needs, split on b"\\n"
only, and a line that is not exactly a journal entry is skipped and counted (`damage()`), whatever it holds.
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from pathlib import Path

from bootagent.fsutil import atomic_write, fsync_dir
from bootagent.model import Actor

LOG = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
PENDING_DIR = "pending"  # one sidecar per open operation
LOCK_NAME = "journal.lock"
BLOCK = 64 * 1024  # the journal is read backwards in blocks of this size
MIN_LINE = 100  # no entry's line is shorter (newline included): lets the trim decide from the size alone
MAX_OFFSETS = 10  # offsets of damaged lines kept for the report
_PLAIN_OP = re.compile(r"[A-Za-z0-9_-]{1,100}")


class Outcome(StrEnum):
    INTENT = "intent"
    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"
    RESUMED = "resumed"  # finished after a cut
    ROLLED_BACK = "rolled-back"  # undone after a cut


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a journal value")


def _text(raw: Mapping[str, object], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


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

    def line(self) -> bytes:
        """The entry as one journal line. Lone surrogates (undecodable file names in an error text) become
        JSON escapes, so the line is always valid UTF-8 and reads back to the same entry."""
        return self.to_json().encode("utf-8", "backslashreplace") + b"\n"

    @classmethod
    def from_json(cls, line: str | bytes) -> JournalEntry:
        """One line back into an entry. ValueError for anything that is not exactly an entry: not UTF-8, not
        JSON, too deep or a number too big to parse, NaN or Infinity, a field missing or of a wrong type."""
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
            return cls._from_raw(json.loads(text, parse_constant=_no_constant))
        except ValueError:
            raise
        except Exception as exc:  # RecursionError (deep nesting), OverflowError, MemoryError, ...
            raise ValueError(f"not a journal entry ({type(exc).__name__})") from exc

    @classmethod
    def _from_raw(cls, raw: object) -> JournalEntry:
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        when = raw.get("time")
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise ValueError("time is not a number")
        seconds = float(when)  # OverflowError for a huge integer
        if not math.isfinite(seconds):
            raise ValueError("time is not finite")
        op = _text(raw, "op")
        if not op:
            raise ValueError("op is empty")
        data = raw.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("data is not a mapping of strings")
        return cls(
            time=seconds,
            op=op,
            actor=Actor(_text(raw, "actor")),
            action=_text(raw, "action"),
            target=_text(raw, "target"),
            outcome=Outcome(_text(raw, "outcome")),
            detail=_text(raw, "detail", ""),
            data=dict(data),
        )


@dataclass(frozen=True)
class JournalDamage:
    """Lines skipped in the part of the journal the last `entries()` read: they hold no journal entry.

    Places are byte offsets from the start of the file (`tail -c +OFFSET+1` shows the line): reading only the
    tail, the journal does not know line numbers."""

    unreadable: int = 0  # complete lines that are not an entry (garbled, a cut write since repaired, ...)
    offsets: tuple[int, ...] = ()  # where the newest of them start, in file order (at most MAX_OFFSETS)
    torn_tail: int | None = None  # where the last line starts, if it has no newline and is no entry

    @property
    def damaged(self) -> bool:
        return self.unreadable > 0 or self.torn_tail is not None

    def summary(self) -> str:
        parts = []
        if self.unreadable:
            where = ", ".join(str(o) for o in self.offsets)
            more = ", ..." if self.unreadable > len(self.offsets) else ""
            plural = "s" if self.unreadable != 1 else ""
            parts.append(f"{self.unreadable} unreadable line{plural} skipped (at byte {where}{more})")
        if self.torn_tail is not None:
            parts.append(f"the last line is incomplete (at byte {self.torn_tail}): a write cut short")
        return "; ".join(parts) if parts else "no damaged lines"


# --- reading lines ---------------------------------------------------------------------------------------
def _pread(fd: int, size: int, offset: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    """One write(); more only if the kernel writes less (a full disk, a signal)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lines_backward(fd: int, size: int) -> Iterator[tuple[int, bytes, bool]]:
    """The first `size` bytes of the file as lines, newest first: (offset of its start, the line without its
    newline, whether it has one). Only the last line can lack one (a torn write). Reads BLOCK bytes at a time,
    from the end, only as far as the caller iterates."""
    pos = size
    rest = b""  # the start of the file up to the lines already yielded, as far as it has been read
    last = True
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        parts = (_pread(fd, step, pos) + rest).split(b"\n")
        end = pos + step + len(rest)  # where the part being yielded ends
        for part in reversed(parts[1:]):
            start = end - len(part)
            if not (last and not part):  # a file ending in b"\n" has nothing after it
                yield start, part, not last
            last = False
            end = start - 1
        rest = parts[0]
    if rest or not last:
        yield 0, rest, not last


def _has_line(fd: int, offset: int, line: bytes, size: int) -> bool:
    """Whether `line` (newline included) starts at `offset`: whole, or only without its newline at the end of
    the file, the way an entry reads back (`entries()` takes such a last line too)."""
    if offset < 0 or offset + len(line) - 1 > size:
        return False
    before = 1 if offset > 0 else 0
    found = _pread(fd, len(line) + before, offset - before)
    if before and found[:1] != b"\n":
        return False
    found = found[before:]
    return found == line or (offset + len(found) == size and found == line[:-1])


# --- sidecars of open operations -------------------------------------------------------------------------
class _State(Enum):
    OPEN = "open"  # the intent line is in the journal, its outcome is not
    NOT_STARTED = "not started"  # cut before the intent line was written
    CLOSED = "closed"  # cut after the outcome line was written, before the sidecar went


@dataclass(frozen=True)
class _Sidecar:
    intent: JournalEntry
    line: bytes  # the intent's journal line, newline included
    at: tuple[int, ...]  # where that line starts: two offsets once a trim has moved it
    outcome: bytes = b""  # once closing: the outcome's line (newline included), and where it goes
    outcome_at: int = -1

    def to_bytes(self) -> bytes:
        """The sidecar as an operation opens (or a trim moves it): one line, without a closing mark."""
        raw = {"intent": self.line[:-1].decode("utf-8"), "at": list(self.at)}
        return json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"

    @staticmethod
    def closing_mark(outcome: bytes, at: int) -> bytes:
        """The line appended to the sidecar, and synced, before the outcome line goes to the journal."""
        raw = {"outcome": outcome[:-1].decode("utf-8"), "outcome_at": at}
        return json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> _Sidecar:
        first, newline, marks = data.partition(b"\n")
        raw = _json_object(first)
        line, at = raw.get("intent"), raw.get("at")
        if not newline or not isinstance(line, str) or not isinstance(at, list) or not at:
            raise ValueError("not a sidecar")
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in at):
            raise ValueError("offsets are not integers")
        intent = JournalEntry.from_json(line)
        if intent.outcome is not Outcome.INTENT:
            raise ValueError("not the sidecar of an intent")
        sidecar = cls(intent, line.encode("utf-8") + b"\n", tuple(at))
        for mark in marks.split(b"\n")[:-1]:  # whole lines: a torn mark was never followed by its outcome
            with contextlib.suppress(ValueError):
                raw = _json_object(mark)
                outcome, outcome_at = raw.get("outcome"), raw.get("outcome_at")
                if (
                    isinstance(outcome, str)
                    and isinstance(outcome_at, int)
                    and not isinstance(outcome_at, bool)
                ):
                    sidecar = replace(sidecar, outcome=outcome.encode("utf-8") + b"\n", outcome_at=outcome_at)
        return sidecar

    def found_at(self, fd: int | None, size: int) -> int | None:
        """Where the intent line is in the journal (None: it never got there)."""
        if fd is None:
            return None
        return next((o for o in self.at if _has_line(fd, o, self.line, size)), None)

    def state(self, fd: int | None, size: int) -> _State:
        if fd is not None and self.outcome and _has_line(fd, self.outcome_at, self.outcome, size):
            return _State.CLOSED
        return _State.NOT_STARTED if self.found_at(fd, size) is None else _State.OPEN

    def open_at(self, fd: int | None, size: int) -> int | None:
        """Where the intent line is, if the operation is open (started, not closed); else None."""
        if fd is not None and self.outcome and _has_line(fd, self.outcome_at, self.outcome, size):
            return None
        return self.found_at(fd, size)


def _json_object(data: bytes) -> dict[str, object]:
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except ValueError:
        raise
    except Exception as exc:  # RecursionError, MemoryError, ...
        raise ValueError(f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return raw


def _sidecar_name(op: str) -> str:
    """A file name for the op: itself when it is plain (uuid hex, as `record()` makes them), else its bytes in
    hex behind a "=" (a character plain names do not have), shortened with a checksum when long."""
    if _PLAIN_OP.fullmatch(op):
        return f"{op}.json"
    raw = op.encode("utf-8", "backslashreplace")
    if len(raw) > 100:
        raw = raw[:80] + zlib.crc32(raw).to_bytes(4, "big")
    return f"={binascii.hexlify(raw).decode()}.json"


@contextlib.contextmanager
def _opened(path: Path, flags: int = os.O_RDONLY) -> Iterator[int | None]:
    """A file descriptor of `path`, or None when it does not exist."""
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _size(fd: int | None) -> int:
    return 0 if fd is None else os.fstat(fd).st_size


class Journal:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        actor: Actor,
        max_entries: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_NAME
        self.pending_dir = self.directory / PENDING_DIR
        self.actor = actor
        self.max_entries = max_entries
        self.clock = clock
        self._damage = JournalDamage()
        self._warned: set[int] = set()

    # --- writing ---------------------------------------------------------------------------------------
    def append(self, entry: JournalEntry) -> None:
        """Add one entry, as one write() of one whole line, synced. An intent gets its op's sidecar before its
        line; an outcome line is followed by the removal of its op's sidecar."""
        with self._write_lock():
            self._tidy()
            if entry.outcome is Outcome.INTENT:
                self._open(entry)
            else:
                self._close(entry)

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
        try:
            self._trim()
        except OSError as exc:  # housekeeping: the operation itself is done and journalled
            LOG.warning("%s: could not trim the journal: %s", self.path, exc)

    def close_pending(self, intent: JournalEntry, outcome: Outcome, detail: str = "") -> JournalEntry:
        """Record the outcome of an operation cut short, after the fact (RESUMED: finished now, ROLLED_BACK:
        undone, FAILED: given up); it is no longer pending."""
        if outcome is Outcome.INTENT:
            raise ValueError("an operation is closed by an outcome, not by another intent")
        return self.record(intent.action, intent.target, outcome, op=intent.op, detail=detail)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # and with it the lock

    def _sidecar_path(self, op: str) -> Path:
        return self.pending_dir / _sidecar_name(op)

    def _write_line(self, fd: int, line: bytes) -> int:
        """Append one line after a newline when the file does not end in one (a torn last line stays a line
        of its own); returns where the line starts. Under the write lock."""
        size = os.fstat(fd).st_size
        prefix = b""
        if size and _pread(fd, 1, size - 1) != b"\n":
            start, fragment, _ = next(_lines_backward(fd, size))
            LOG.warning(
                "%s: the last line (%d bytes at byte %d) has no newline, a write cut short; "
                "the next entry starts on a new line",
                self.path,
                len(fragment),
                start,
            )
            prefix = b"\n"
        _write_all(fd, prefix + line)  # one write() for a whole line, so appends never interleave
        os.fsync(fd)
        return os.lseek(fd, 0, os.SEEK_CUR) - len(line)  # O_APPEND: the end of what was written

    def _append_fd(self) -> tuple[int, bool]:
        created = not self.path.exists()
        return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644), created

    def _predict(self, fd: int) -> int:
        """Where the next line will start (under the write lock)."""
        size = os.fstat(fd).st_size
        return size + (1 if size and _pread(fd, 1, size - 1) != b"\n" else 0)

    def _open(self, intent: JournalEntry) -> None:
        line = intent.line()
        fd, created = self._append_fd()
        try:
            predicted = self._predict(fd)
            sidecar = _Sidecar(intent, line, (predicted,))
            path = self._sidecar_path(intent.op)
            atomic_write(path, sidecar.to_bytes())  # synced, directory too: before the intent line
            start = self._write_line(fd, line)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)
        if start != predicted:  # a writer that takes no lock (an older version) came in between
            atomic_write(path, replace(sidecar, at=(predicted, start)).to_bytes())

    def _close(self, entry: JournalEntry) -> None:
        line = entry.line()
        path = self._sidecar_path(entry.op)
        sidecar = self._read_sidecar(path)
        ours = sidecar is not None and sidecar.intent.op == entry.op
        damaged = sidecar is None and path.exists()
        fd, created = self._append_fd()
        try:
            if ours:
                self._mark_closing(path, _Sidecar.closing_mark(line, self._predict(fd)))
            self._write_line(fd, line)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)
        if ours or damaged:
            path.unlink(missing_ok=True)  # no sync needed: if it comes back, it reads as closed

    @staticmethod
    def _mark_closing(path: Path, mark: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, mark)  # torn by a cut, it reads as no mark: the outcome line comes after it
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_sidecar(self, path: Path) -> _Sidecar | None:
        try:
            return _Sidecar.from_bytes(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            LOG.warning("%s: damaged, ignored: %s", path, exc)
            return None

    def _sidecars(self) -> Iterator[tuple[Path, _Sidecar | None]]:
        try:
            names = sorted(os.listdir(self.pending_dir))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                path = self.pending_dir / name
                yield path, self._read_sidecar(path)

    def _tidy(self) -> None:
        """Under the write lock: start the sidecars of an older journal, remove those of operations that
        never started or are closed, and temporary files a crash left."""
        if not self.pending_dir.is_dir():
            self._migrate()
            return
        for name in os.listdir(self.pending_dir):
            if name.startswith("."):  # atomic_write's temporary file, left by a crash
                (self.pending_dir / name).unlink(missing_ok=True)
        with _opened(self.path) as fd:
            size = _size(fd)
            for path, sidecar in self._sidecars():
                state = _State.OPEN if sidecar is None else sidecar.state(fd, size)
                if state is not _State.OPEN:
                    LOG.info("%s: stale (%s), removed", path, state.value)
                    path.unlink(missing_ok=True)

    def _migrate(self) -> None:
        """A journal written before sidecars existed: find its open operations once, the slow way."""
        with _opened(self.path) as fd:
            size = _size(fd)
            found: dict[str, _Sidecar] = {}
            if fd is not None:
                for offset, raw, _ in reversed(list(_lines_backward(fd, size))):
                    with contextlib.suppress(ValueError):
                        entry = JournalEntry.from_json(raw)
                        if entry.outcome is Outcome.INTENT:
                            found[entry.op] = _Sidecar(entry, raw + b"\n", (offset,))
                        else:
                            found.pop(entry.op, None)
        staging = self.directory / f"{PENDING_DIR}.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for sidecar in found.values():
            atomic_write(staging / _sidecar_name(sidecar.intent.op), sidecar.to_bytes())
        fsync_dir(staging)
        os.rename(staging, self.pending_dir)
        fsync_dir(self.directory)
        if found:
            LOG.info("%s: %d open operation(s) found in an older journal", self.path, len(found))

    def _trim(self) -> None:
        """Keep the newest `max_entries` lines once there are 10 % more, and every pending intent. Decided
        from the size, or by counting lines from the end: the lines are copied, never parsed."""
        limit = self.max_entries + self.max_entries // 10
        with self._write_lock(), _opened(self.path) as fd:
            size = _size(fd)
            if fd is None or size <= limit * MIN_LINE:
                return
            count, cut = 0, size
            for offset, raw, _ in _lines_backward(fd, size):
                count += 1 if raw else 0
                if count == self.max_entries and cut == size:
                    cut = offset
                if count > limit:
                    break
            else:
                return
            self._tidy()
            moved: list[tuple[Path, _Sidecar, int]] = []
            for path, sidecar in self._sidecars():
                at = None if sidecar is None else sidecar.found_at(fd, size)
                if sidecar is not None and at is not None:
                    moved.append((path, sidecar, at))
            moved.sort(key=lambda m: m[2])
            head = b"".join(sidecar.line for _, sidecar, at in moved if at < cut)
            placed = 0  # where the next intent moved in front of the kept lines goes
            for path, sidecar, at in moved:
                if at < cut:
                    new, placed = placed, placed + len(sidecar.line)
                else:
                    new = len(head) + at - cut
                # both places, until the next trim: a reader may hold either file
                atomic_write(path, replace(sidecar, at=(at, new), outcome=b"", outcome_at=-1).to_bytes())
            fsync_dir(self.pending_dir)  # earlier removals are durable before the old lines go
            atomic_write(self.path, head + _pread(fd, size - cut, cut))
            LOG.info(
                "%s: trimmed to the newest %d lines and the pending intents", self.path, self.max_entries
            )

    # --- reading ---------------------------------------------------------------------------------------
    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        """The newest `limit` entries (all when None or 0), oldest first, reading the file from its end only
        as far as needed. Lines that are no entry are skipped and counted: see `damage()`."""
        entries, damage = self._read(limit)
        self._damage = damage
        fresh = [o for o in (*damage.offsets, damage.torn_tail) if o is not None and o not in self._warned]
        if fresh:
            LOG.warning("%s: %s", self.path, damage.summary())
            self._warned.update(fresh)
        return entries

    def damage(self) -> JournalDamage:
        """The damaged lines the last `entries()` saw, in the part of the journal it read."""
        return self._damage

    def _read(self, limit: int | None) -> tuple[list[JournalEntry], JournalDamage]:
        out: list[JournalEntry] = []
        bad: list[int] = []
        torn: int | None = None
        with _opened(self.path) as fd:
            if fd is None:
                return [], JournalDamage()
            for offset, raw, terminated in _lines_backward(fd, _size(fd)):
                if not raw.strip():
                    continue
                try:
                    out.append(JournalEntry.from_json(raw))
                except ValueError:
                    if terminated:
                        bad.append(offset)
                    else:
                        torn = offset
                    continue
                if limit is not None and 0 < limit <= len(out):
                    break
        out.reverse()
        return out, JournalDamage(len(bad), tuple(reversed(bad[:MAX_OFFSETS])), torn)

    def pending(self) -> list[JournalEntry]:
        """Intents that never got an outcome (cut short, e.g. by a power cut), oldest first: the sidecars
        whose intent line is in the journal and whose outcome line is not."""
        if not self.pending_dir.is_dir():  # an older journal, until the next write adds the sidecars
            return self._pending_by_scan()
        for _ in range(3):
            found: list[tuple[int, JournalEntry]] = []
            doubtful = False
            with _opened(self.path) as fd:
                size = _size(fd)
                for _path, sidecar in self._sidecars():
                    if sidecar is None:
                        continue
                    at = sidecar.open_at(fd, size)
                    if at is not None:
                        found.append((at, sidecar.intent))
                    else:
                        doubtful = True
                if not doubtful or not self._replaced(fd):
                    break
        # in the journal's order: where the intent lines are (times can tie, or go back with the clock)
        return [intent for _at, intent in sorted(found, key=lambda f: (f[0], f[1].time, f[1].op))]

    def _replaced(self, fd: int | None) -> bool:
        """Whether a trim replaced the file since `fd` was opened (a sidecar may then name the new place)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return fd is not None
        if fd is None:
            return True
        then = os.fstat(fd)
        return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)

    def _pending_by_scan(self) -> list[JournalEntry]:
        open_ops: dict[str, JournalEntry] = {}
        for entry in self._read(None)[0]:
            if entry.outcome is Outcome.INTENT:
                open_ops[entry.op] = entry
            else:
                open_ops.pop(entry.op, None)
        return list(open_ops.values())
