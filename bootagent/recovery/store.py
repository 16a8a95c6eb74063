"""Where recovery keeps what must outlive a boot: the state dataset (no reset erases it), beside the journal.

- `ladder.json`: the ladder in progress (LadderState) and the last recovery a good boot ended (Recovered);
- `boot.json`: this boot's record -- the environment, the counter GRUB left, the health checks' verdict --
  written by boot-start and health, read by the agent at the limit and by status.

Every write replaces the whole file atomically (temp file, fsync, rename): a power cut leaves the old or the
new state. A file that exists and cannot be read is reported as such (`LadderState.unreadable`), never taken
for "no ladder".
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bootagent.fsutil import atomic_write
from bootagent.recovery.ladder import Attempt, LadderState, Recovered

LOG = logging.getLogger(__name__)

LADDER_FILE = "ladder.json"
BOOT_FILE = "boot.json"
MAX_BYTES = 256 * 1024  # far more than any real state; a bigger file is damage


@dataclass(frozen=True)
class BootRecord:
    """One boot of the running system, as boot-start and the health checks saw it."""

    boot_id: str
    environment: str
    started: int
    tries: int | None  # the counter GRUB left for this boot (None: missing or garbled)
    repaired: str = ""  # what boot-start had to repair in grubenv
    health: str = ""  # "", "passed" or "failed"
    failed_required: tuple[str, ...] = ()
    failed_wanted: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.failed_required:
            names = ", ".join(self.failed_required)
            return f"required check{'s' if len(self.failed_required) > 1 else ''} {names} failed"
        return ""


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The object in `path`; (None, "") when there is no file, (None, why) when it cannot be read."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    if len(data) > MAX_BYTES:
        return None, f"{path} is larger than {MAX_BYTES} bytes"
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"{path} is not valid JSON ({type(exc).__name__})"
    if not isinstance(value, dict):
        return None, f"{path} does not hold an object"
    return value, ""


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} is not an integer")
    return value


def _attempts(raw: object) -> tuple[Attempt, ...]:
    if not isinstance(raw, list):
        raise ValueError("attempts is not a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("an attempt is not an object")
        out.append(Attempt(_str(item, "environment"), _str(item, "outcome")))
    return tuple(out)


def ladder_from_json(raw: dict[str, Any]) -> LadderState:
    failing = raw.get("failing")
    if failing is not None and not isinstance(failing, str):
        raise ValueError("failing is not a string")
    return LadderState(
        failing=failing,
        failures=_int(raw, "failures"),
        reason=_str(raw, "reason"),
        attempts=_attempts(raw.get("attempts", [])),
        reset=bool(raw.get("reset", False)),
        manual=bool(raw.get("manual", False)),
        started=_int(raw, "started"),
    )


def recovered_from_json(raw: dict[str, Any]) -> Recovered:
    return Recovered(
        booted=_str(raw, "booted"),
        failing=_str(raw, "failing"),
        failures=_int(raw, "failures"),
        reason=_str(raw, "reason"),
        attempts=_attempts(raw.get("attempts", [])),
        manual=bool(raw.get("manual", False)),
        time=_int(raw, "time"),
    )


def _ladder_json(state: LadderState) -> dict[str, Any]:
    data = asdict(state)
    data.pop("unreadable")
    return data


class RecoveryStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.ladder_path = self.directory / LADDER_FILE
        self.boot_path = self.directory / BOOT_FILE

    def _write(self, path: Path, value: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    # --- the ladder -------------------------------------------------------------------------------------
    def _ladder_file(self) -> tuple[dict[str, Any] | None, str]:
        return _read_json(self.ladder_path)

    def ladder(self) -> LadderState:
        raw, problem = self._ladder_file()
        if problem:
            LOG.error("the recovery state is unreadable: %s", problem)
            return LadderState(unreadable=problem)
        if raw is None or raw.get("ladder") is None:
            return LadderState()
        try:
            value = raw["ladder"]
            if not isinstance(value, dict):
                raise ValueError("ladder is not an object")
            return ladder_from_json(value)
        except ValueError as exc:
            LOG.error("the recovery state is unreadable: %s: %s", self.ladder_path, exc)
            return LadderState(unreadable=f"{self.ladder_path}: {exc}")

    def last_recovery(self) -> Recovered | None:
        raw, _problem = self._ladder_file()
        value = (raw or {}).get("last_recovery")
        if not isinstance(value, dict):
            return None
        try:
            return recovered_from_json(value)
        except ValueError:
            return None

    def save_ladder(self, state: LadderState) -> None:
        """Persist the ladder (the step it names is taken after this returns)."""
        last = self.last_recovery()
        self._write(
            self.ladder_path,
            {"ladder": _ladder_json(state), "last_recovery": asdict(last) if last else None},
        )

    def end_ladder(self, recovered: Recovered | None) -> None:
        """A good boot: no ladder in progress; `recovered` (when there was one) is kept for status."""
        last = recovered or self.last_recovery()
        self._write(self.ladder_path, {"ladder": None, "last_recovery": asdict(last) if last else None})

    # --- this boot --------------------------------------------------------------------------------------
    def boot(self) -> BootRecord | None:
        raw, problem = _read_json(self.boot_path)
        if raw is None:
            if problem:
                LOG.warning("%s", problem)
            return None
        try:
            tries = raw.get("tries")
            if tries is not None and (not isinstance(tries, int) or isinstance(tries, bool)):
                raise ValueError("tries is not an integer")
            required = raw.get("failed_required", [])
            wanted = raw.get("failed_wanted", [])
            if not all(isinstance(x, str) for x in [*required, *wanted]):
                raise ValueError("check names are not strings")
            return BootRecord(
                boot_id=_str(raw, "boot_id"),
                environment=_str(raw, "environment"),
                started=_int(raw, "started"),
                tries=tries,
                repaired=_str(raw, "repaired"),
                health=_str(raw, "health"),
                failed_required=tuple(required),
                failed_wanted=tuple(wanted),
            )
        except (ValueError, TypeError) as exc:
            LOG.warning("%s: %s; ignored", self.boot_path, exc)
            return None

    def save_boot(self, record: BootRecord) -> None:
        self._write(self.boot_path, asdict(record))
