"""The recovery ladder: what an unattended machine does after too many failed boots in a row.

Pure: `decide(state, facts, policy)` returns the next step and the state to persist *before* the step is
taken; `after_good_boot(state, booted)` is what a good boot makes of it. The state only moves forward until a
good boot resets it, so whatever fails, the machine climbs down the ladder once and stops:

1. the last-known-good environment (the newest one that ever booted well), unless it is the failing one;
2. then up to `older_good` older environments that once booted well, newest first;
3. then the configured last resort (`reset-keep-data`; an automatic reset never erases customer data);
4. then manual intervention: the recovery menu on the console, no countdown, no further reboot.

An environment the ladder has given up on is marked failed (a user property) and never chosen automatically
again until someone activates it. A state that cannot be read is not guessed at: it goes to manual
intervention, which never reboots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bootagent.config import Config, FallbackAction, LastResort


class StepKind(StrEnum):
    BOOT = "boot"  # boot `environment`
    RESET = "reset-keep-data"  # the factory reset that keeps the customer's data
    MANUAL = "manual"  # stop at the menu: a person must decide


@dataclass(frozen=True)
class Candidate:
    """An environment as the ladder sees it."""

    name: str
    last_good: int | None  # when it last booted well (epoch seconds), None = never
    failed: bool = False  # marked failed by an earlier ladder
    bootable: bool = True  # its name can be handed over (the kernel is checked when it is chosen)


@dataclass(frozen=True)
class Policy:
    limit: int = 3
    fallback: FallbackAction = FallbackAction.LAST_KNOWN_GOOD
    older_good: int = 0
    last_resort: LastResort = LastResort.NONE

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        r = config.recovery
        return cls(
            limit=r.boot_count_limit, fallback=r.fallback, older_good=r.older_good, last_resort=r.last_resort
        )


@dataclass(frozen=True)
class Attempt:
    """One rung that was tried, and what is known of how it went."""

    environment: str
    outcome: str = ""  # filled in when the ladder comes back: e.g. "required check web.sh failed"


@dataclass(frozen=True)
class LadderState:
    """Persisted between boots. `failing` None and not `manual`: no ladder in progress."""

    failing: str | None = None  # the environment whose boots failed `failures` times in a row
    failures: int = 0
    reason: str = ""  # what is known of why the failing environment failed
    attempts: tuple[Attempt, ...] = ()  # rungs tried, in order
    reset: bool = False  # the last resort was started
    manual: bool = False  # the end of the ladder: waiting for a person
    started: int = 0  # epoch seconds
    unreadable: str = ""  # the persisted state could not be read: why

    @property
    def active(self) -> bool:
        return self.failing is not None or self.manual or bool(self.unreadable)

    @property
    def tried(self) -> tuple[str, ...]:
        return tuple(a.environment for a in self.attempts)


@dataclass(frozen=True)
class Facts:
    """What the agent sees at the limit."""

    failing: str | None  # the environment GRUB's default path was booting (root= on the command line)
    candidates: Sequence[Candidate]
    reason: str = ""  # the failing boot's own record (a failed check), when it left one
    now: int = 0


@dataclass(frozen=True)
class Step:
    kind: StepKind
    environment: str | None = None
    why: str = ""
    mark_failed: tuple[str, ...] = field(default=())  # environments to mark failed before the step


def _rungs(candidates: Sequence[Candidate], policy: Policy) -> list[Candidate]:
    """The last-known-good environment and the older good ones the policy allows, newest first. Environments
    marked failed are good no longer."""
    good = [c for c in candidates if c.last_good is not None and not c.failed]
    good.sort(key=lambda c: (c.last_good or 0, c.name), reverse=True)
    return good[: 1 + policy.older_good]


def decide(state: LadderState, facts: Facts, policy: Policy) -> tuple[Step, LadderState]:
    """The next rung. Persist the returned state, mark `step.mark_failed`, then take the step."""
    if state.unreadable:
        why = f"the recovery state cannot be read ({state.unreadable}); nothing is guessed"
        return Step(StepKind.MANUAL, why=why), replace(state, manual=True)
    if state.manual:
        return Step(StepKind.MANUAL, why=manual_reason(state)), state
    marks: list[str] = []
    if state.failing is None:  # the limit was reached just now: a new ladder
        failing = facts.failing
        state = LadderState(
            failing=failing or "(unknown)",
            failures=policy.limit,
            reason=facts.reason,
            started=facts.now,
        )
        if failing:
            marks.append(failing)
    elif state.reset:  # the reset ran and what it made did not boot well either: the rungs are done
        pass
    elif state.attempts:  # we are back: the rung tried last failed too
        last = state.attempts[-1]
        outcome = facts.reason or "did not boot to a good state"
        state = replace(state, attempts=(*state.attempts[:-1], replace(last, outcome=outcome)))
        marks.append(last.environment)
    if policy.fallback is FallbackAction.MENU:
        state = replace(state, manual=True)
        return Step(StepKind.MANUAL, why=manual_reason(state), mark_failed=tuple(marks)), state
    excluded = {state.failing, *state.tried, *marks}
    if not state.reset:
        budget = 1 + policy.older_good
        options = [c for c in _rungs(facts.candidates, policy) if c.name not in excluded and c.bootable]
        if options and len(state.attempts) < budget:
            chosen = options[0]
            why = (
                "the last-known-good environment"
                if not state.attempts and chosen == _rungs(facts.candidates, policy)[0]
                else "an older environment that booted well"
            )
            state = replace(state, attempts=(*state.attempts, Attempt(chosen.name)))
            return Step(StepKind.BOOT, chosen.name, why, tuple(marks)), state
        if policy.last_resort is LastResort.RESET_KEEP_DATA:
            state = replace(state, reset=True)
            why = "no environment that booted well is left: the last resort, a reset that keeps the data"
            return Step(StepKind.RESET, why=why, mark_failed=tuple(marks)), state
    state = replace(state, manual=True)
    return Step(StepKind.MANUAL, why=manual_reason(state), mark_failed=tuple(marks)), state


def refused(state: LadderState, environment: str, why: str) -> LadderState:
    """The chosen rung could not even be started (no kernel, ...): record it as failed at once."""
    attempts = tuple(
        replace(a, outcome=why) if a.environment == environment and not a.outcome else a
        for a in state.attempts
    )
    return replace(state, attempts=attempts)


def manual_reason(state: LadderState) -> str:
    if state.unreadable:
        return f"the recovery state cannot be read ({state.unreadable})"
    parts = [f"{state.failing} failed {state.failures} boots in a row"]
    if state.reason:
        parts[0] += f" ({state.reason})"
    for a in state.attempts:
        parts.append(f"{a.environment} was tried" + (f" and {a.outcome}" if a.outcome else ""))
    if state.reset:
        parts.append("the reset that keeps the data was tried")
    if not state.attempts and not state.reset:
        parts.append("no other environment ever booted well")
    return "; ".join(parts) + ": manual intervention needed"


@dataclass(frozen=True)
class Recovered:
    """What a good boot after a ladder says about it (status, the login message, the journal)."""

    booted: str
    failing: str
    failures: int
    reason: str
    attempts: tuple[Attempt, ...]
    manual: bool
    time: int

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        if self.manual:
            how = "after manual intervention"
        elif self.booted == self.failing:
            how = "again"
        else:
            how = "a fallback"
        earlier = [a for a in self.attempts if a.environment != self.booted]
        tail = "".join(
            f"; {a.environment} was tried first" + (f" ({a.outcome})" if a.outcome else "") for a in earlier
        )
        if how == "a fallback":
            return (
                f"this boot is a fallback to {self.booted} after {self.failures} failed boots of "
                f"{self.failing}{why}{tail}"
            )
        return (
            f"this boot of {self.booted} came {how}, after {self.failures} failed boots of "
            f"{self.failing}{why}{tail}"
        )


def after_good_boot(state: LadderState, booted: str, now: int) -> Recovered | None:
    """A good boot ends the ladder; what to report about it (None: there was no ladder)."""
    if not state.active:
        return None
    return Recovered(
        booted=booted,
        failing=state.failing or "(unknown)",
        failures=state.failures,
        reason=state.reason,
        attempts=state.attempts,
        manual=state.manual or booted not in state.tried,
        time=now,
    )
