"""The recovery ladder as a state machine: every transition, the end of the ladder, a good boot in the
middle, and a state that cannot be read."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootagent.config import FallbackAction, LastResort
from bootagent.recovery.ladder import (
    Attempt,
    Candidate,
    Facts,
    LadderState,
    Policy,
    StepKind,
    after_good_boot,
    decide,
    manual_reason,
    refused,
)

POOL = [
    Candidate("gamma", last_good=300),  # the newest good one, and the one that fails now
    Candidate("beta", last_good=200),
    Candidate("alpha", last_good=100),
    Candidate("never", last_good=None),
]


def facts(failing: str | None = "gamma", reason: str = "", candidates: list[Candidate] = POOL) -> Facts:
    return Facts(failing=failing, candidates=candidates, reason=reason, now=1000)


def test_the_limit_starts_a_ladder_and_the_last_known_good_is_booted() -> None:
    pool = [Candidate("beta", 300), Candidate("gamma", 200)]
    step, state = decide(
        LadderState(), facts(candidates=pool, reason="required check web.sh failed"), Policy()
    )
    assert (step.kind, step.environment) == (StepKind.BOOT, "beta")
    assert step.why == "the last-known-good environment"
    assert step.mark_failed == ("gamma",)
    assert state == LadderState(
        failing="gamma",
        failures=3,
        reason="required check web.sh failed",
        attempts=(Attempt("beta"),),
        started=1000,
    )


def test_when_the_failing_one_is_the_last_known_good_only_configured_older_ones_are_tried() -> None:
    step, state = decide(LadderState(), facts(), Policy())
    assert step.kind is StepKind.MANUAL  # gamma is the newest good one: no older one is configured
    assert state.manual
    assert "gamma failed 3 boots in a row" in step.why
    assert "no other environment ever booted well" in step.why
    step, state = decide(LadderState(), facts(), Policy(older_good=1))
    assert (step.kind, step.environment, step.why) == (
        StepKind.BOOT,
        "beta",
        "an older environment that booted well",
    )


def test_each_rung_is_tried_once_then_the_last_resort_then_manual() -> None:
    policy = Policy(older_good=2, last_resort=LastResort.RESET_KEEP_DATA)
    state = LadderState()
    seen = []
    for reason in ("", "required check db.sh failed", "", ""):
        step, state = decide(state, facts(reason=reason), policy)
        seen.append((step.kind, step.environment, step.mark_failed))
    assert seen == [
        (StepKind.BOOT, "beta", ("gamma",)),
        (StepKind.BOOT, "alpha", ("beta",)),
        (StepKind.RESET, None, ("alpha",)),
        (StepKind.MANUAL, None, ()),
    ]
    assert state.attempts == (
        Attempt("beta", "required check db.sh failed"),
        Attempt("alpha", "did not boot to a good state"),
    )
    assert state.reset
    assert state.manual
    # and it stays there: every later boot at the limit stops at the same screen
    again, same = decide(state, facts(), policy)
    assert again.kind is StepKind.MANUAL
    assert same == state
    assert "the reset that keeps the data was tried" in again.why


def test_never_erase_everything_and_never_more_rungs_than_allowed() -> None:
    assert {r.value for r in LastResort} == {"none", "reset-keep-data"}
    state = LadderState()
    kinds = []
    for _ in range(10):
        step, state = decide(state, facts(), Policy(older_good=20))
        kinds.append(step.kind)
    assert kinds[:2] == [StepKind.BOOT, StepKind.BOOT]  # beta, alpha: the only other good ones
    assert set(kinds[2:]) == {StepKind.MANUAL}


def test_environments_marked_failed_or_not_bootable_are_never_chosen() -> None:
    pool = [
        Candidate("gamma", 300),
        Candidate("beta", 250, failed=True),
        Candidate("my test", 240, bootable=False),
        Candidate("alpha", 100),
    ]
    step, _ = decide(LadderState(), facts(candidates=pool), Policy(older_good=3))
    assert step.environment == "alpha"


def test_fallback_menu_stops_at_once() -> None:
    step, state = decide(LadderState(), facts(), Policy(fallback=FallbackAction.MENU))
    assert step.kind is StepKind.MANUAL
    assert state.manual
    assert step.mark_failed == ("gamma",)


def test_an_unreadable_state_is_not_guessed_at() -> None:
    step, state = decide(LadderState(unreadable="ladder.json is not valid JSON"), facts(), Policy())
    assert step.kind is StepKind.MANUAL
    assert "cannot be read" in step.why
    assert state.manual


def test_an_unknown_failing_environment_still_climbs_down() -> None:
    pool = [Candidate("beta", 200)]
    step, state = decide(LadderState(), facts(failing=None, candidates=pool), Policy())
    assert step.environment == "beta"
    assert step.mark_failed == ()
    assert state.failing == "(unknown)"


def test_a_rung_that_cannot_start_is_recorded_and_the_next_one_taken() -> None:
    step, state = decide(LadderState(), facts(), Policy(older_good=2))
    assert step.environment == "beta"
    state = refused(state, "beta", "beta has no bootable kernel")
    step, state = decide(state, facts(reason="beta has no bootable kernel"), Policy(older_good=2))
    assert step.environment == "alpha"
    assert step.mark_failed == ("beta",)
    assert state.attempts[0] == Attempt("beta", "beta has no bootable kernel")


def test_a_good_boot_ends_the_ladder_and_says_what_happened() -> None:
    _, state = decide(LadderState(), facts(reason="required check web.sh failed"), Policy(older_good=1))
    done = after_good_boot(state, "beta", now=2000)
    assert done is not None
    assert done.describe() == (
        "this boot is a fallback to beta after 3 failed boots of gamma (required check web.sh failed)"
    )
    assert after_good_boot(LadderState(), "beta", now=2000) is None
    # a person chose at the manual screen
    _, stuck = decide(LadderState(), facts(), Policy())
    by_hand = after_good_boot(stuck, "gamma", now=2000)
    assert by_hand is not None
    assert by_hand.manual
    assert "after manual intervention" in by_hand.describe()


def test_a_good_boot_in_the_middle_resets_so_a_later_limit_starts_from_the_top() -> None:
    policy = Policy(older_good=1)
    _, state = decide(LadderState(), facts(), policy)
    assert after_good_boot(state, "beta", now=2000) is not None
    fresh = LadderState()  # what bless persists
    step, state = decide(
        fresh, facts(failing="beta", candidates=[*POOL[1:], Candidate("gamma", 300)]), policy
    )
    assert step.environment == "gamma"  # the newest good one again, not "the next rung"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.one_of(st.none(), st.integers(0, 50)),
            st.booleans(),
            st.booleans(),
        ),
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    st.integers(0, 5),
    st.sampled_from(list(LastResort)),
    st.sampled_from(list(FallbackAction)),
)
def test_any_pool_ends_at_manual_within_a_bounded_number_of_boots(
    pool: list[tuple[str, int | None, bool, bool]], older: int, last: LastResort, fallback: FallbackAction
) -> None:
    """Never a loop: whatever the pool and policy, after at most 1 + older_good + 1 rungs the ladder stops,
    every BOOT names a good, unmarked, bootable environment other than the failing one, and nothing is
    tried twice."""
    candidates = [Candidate(n, g, failed=f, bootable=b) for n, g, f, b in pool]
    policy = Policy(older_good=older, last_resort=last, fallback=fallback)
    state = LadderState()
    booted: list[str] = []
    for boots in range(older + 4):
        step, state = decide(state, Facts("a", candidates, now=boots), policy)
        if step.kind is StepKind.MANUAL:
            break
        if step.kind is StepKind.BOOT:
            chosen = next(c for c in candidates if c.name == step.environment)
            assert chosen.last_good is not None
            assert not chosen.failed
            assert chosen.bootable
            assert chosen.name != "a"
            assert chosen.name not in booted
            booted.append(chosen.name)
    else:
        pytest.fail(f"no manual stop after {older + 4} boots: {state}")
    assert len(booted) <= 1 + older
    assert state.manual
    assert manual_reason(state).endswith("manual intervention needed")
    assert replace(state) == state
