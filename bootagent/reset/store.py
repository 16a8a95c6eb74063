"""The reset's persistent state, in the state dataset (which no reset erases), under reset/:

  request.json  a reset asked for from the running system (`bootagent factory-reset`), for the next boot
  plan.json     the plan of the reset under way and how far it got; written before the first change, after
                every step, and removed last (as last.json)
  history.json  the reset counter and the last reset (kept across every mode, like ChromeOS's powerwash count)

And in GRUB's environment block, RESET_VAR: while it is set, every bootagent entry of GRUB starts the agent
to carry the reset on (the boot control block of Android's recovery): set with the request or the plan,
cleared only when the reset is complete. Writes are atomic; a file that cannot be read is reported, never
taken for "no reset".
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bootagent.fsutil import atomic_write
from bootagent.reset.mode import ResetMode

if TYPE_CHECKING:  # the planner is imported only when there is a plan to read (every boot reads the request)
    from bootagent.reset.plan import ResetPlan

RESET_VAR = "bootagent_reset"
DIRECTORY = "reset"


@dataclass(frozen=True)
class ResetRequest:
    mode: ResetMode
    baseline: str | None
    secure: bool
    requested_by: str  # who confirmed it: "cli", "agent", "automatic"
    time: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "mode": self.mode.value,
                "baseline": self.baseline,
                "secure": self.secure,
                "requested_by": self.requested_by,
                "time": self.time,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ResetRequest:
        try:
            raw = json.loads(text)
            baseline = raw.get("baseline")
            return cls(
                mode=ResetMode(raw["mode"]),
                baseline=baseline if isinstance(baseline, str) else None,
                secure=bool(raw.get("secure", False)),
                requested_by=str(raw.get("requested_by", "")),
                time=int(raw.get("time", 0)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a reset request ({exc})") from None


@dataclass(frozen=True)
class ResetHistory:
    count: int = 0
    last: str = ""  # one line: when, which mode, which baseline, the new environment

    def to_json(self) -> str:
        return json.dumps({"count": self.count, "last": self.last}, sort_keys=True)


class UnreadableState(Exception):
    """A reset file exists but cannot be read: the reset must stop for a person, never be taken as done."""


class ResetStore:
    def __init__(self, state_directory: str) -> None:
        self.dir = Path(state_directory) / DIRECTORY

    def _read(self, name: str) -> str | None:
        try:
            return (self.dir / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise UnreadableState(f"{self.dir / name}: {exc}") from None

    def _write(self, name: str, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / name, text.encode("utf-8") + b"\n", mode=0o600)

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / name)

    # --- the request --------------------------------------------------------------------------------------
    def request(self) -> ResetRequest | None:
        text = self._read("request.json")
        if text is None:
            return None
        try:
            return ResetRequest.from_json(text)
        except ValueError as exc:
            raise UnreadableState(f"{self.dir / 'request.json'}: {exc}") from None

    def save_request(self, request: ResetRequest) -> None:
        self._write("request.json", request.to_json())

    def clear_request(self) -> None:
        self._remove("request.json")

    # --- the plan -----------------------------------------------------------------------------------------
    def plan(self) -> ResetPlan | None:
        text = self._read("plan.json")
        if text is None:
            return None
        from bootagent.reset.plan import ResetPlan

        try:
            return ResetPlan.from_json(text)
        except ValueError as exc:
            raise UnreadableState(f"{self.dir / 'plan.json'}: {exc}") from None

    def save_plan(self, plan: ResetPlan) -> None:
        self._write("plan.json", plan.to_json())

    def finish_plan(self, plan: ResetPlan) -> None:
        """The complete plan is kept as last.json; plan.json goes (the last file change of a reset)."""
        self._write("last.json", plan.to_json())
        self._remove("plan.json")

    def last_plan(self) -> ResetPlan | None:
        text = self._read("last.json")
        if text is None:
            return None
        from bootagent.reset.plan import ResetPlan

        try:
            return ResetPlan.from_json(text)
        except ValueError:
            return None

    # --- the counter --------------------------------------------------------------------------------------
    def history(self) -> ResetHistory:
        text = self._read("history.json")
        if text is None:
            return ResetHistory()
        try:
            raw = json.loads(text)
            return ResetHistory(count=int(raw.get("count", 0)), last=str(raw.get("last", "")))
        except (ValueError, TypeError, AttributeError):
            return ResetHistory(count=0, last="(history.json unreadable)")

    def count_reset(self, plan: ResetPlan, now: int) -> ResetHistory:
        """Once per plan: the counter goes up unless the history already names this plan's operation."""
        before = self.history()
        if plan.op and plan.op in before.last:
            return before
        after = ResetHistory(
            count=before.count + 1,
            last=f"{now}: {plan.mode.value} to baseline {plan.baseline} as {plan.new_environment} "
            f"(op {plan.op})",
        )
        self._write("history.json", after.to_json())
        return after
