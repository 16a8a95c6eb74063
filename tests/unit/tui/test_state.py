"""The menu's state machine, without a terminal: keys in, effects out, session calls run by hand."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from bootagent.boot.session import MenuExit, MenuResult
from bootagent.errors import RefusedError
from bootagent.tui import state as S
from bootagent.tui.app import initial_state
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.fake_session import FakeSession


@pytest.fixture
def session(tmp_path: Path) -> FakeSession:
    return FakeSession(tmp_path)


def make(session: FakeSession, **settings: object) -> S.MenuState:
    return initial_state(session, MenuSettings(**settings), 0.0)  # type: ignore[arg-type]


def drive(state: S.MenuState, session: FakeSession, effects: list[S.Effect]) -> MenuResult | None:
    """Carry out effects as a front end does (synchronously); the MenuResult if the menu ended."""
    queue = list(effects)
    while queue:
        effect = queue.pop(0)
        if isinstance(effect, S.Exit):
            return effect.result
        if isinstance(effect, S.Call):
            state.start(effect)
            try:
                outcome: object = effect.run(session, state.report)
            except Exception as exc:
                outcome = exc
            queue[:0] = state.finish(effect, outcome)
    return None


def press(state: S.MenuState, session: FakeSession, *keys: str) -> MenuResult | None:
    for key in keys:
        result = drive(state, session, state.handle(key))
        if result is not None:
            return result
    return None


def screen_of(state: S.MenuState) -> S.Screen:
    return state.screen  # (a call, so mypy does not narrow the screen across key presses)


def message_of(state: S.MenuState) -> S.Message | None:
    return state.message  # (a call, so mypy does not narrow it across key presses)


def labels(state: S.MenuState) -> list[str]:
    return [row.label for row in state.rows()]


def test_starts_on_the_default_with_a_countdown(session: FakeSession) -> None:
    st = make(session, timeout=10)
    assert labels(st) == ["alpha", "beta", "gamma"]
    assert st.selected() == S.Row(st.inventory.find("beta"))  # type: ignore[union-attr]
    assert st.countdown() == 10
    st.tick(3.2)
    assert st.countdown() == 7


def test_the_countdown_starts_at_its_timeout_whatever_the_clock(session: FakeSession) -> None:
    """(2.7674 + 30) - 2.7674 is 30.000000000000004: the first figure shown was once 31."""
    for now in (0.0, 2.7674, 2.7811, 1234.5678, 987654.321):
        st = initial_state(session, MenuSettings(timeout=30), now)
        assert st.countdown() == 30, now
        st.tick(now + 0.5)
        assert st.countdown() == 30
        st.tick(now + 29.0)
        assert st.countdown() == 1


def test_any_key_stops_the_countdown(session: FakeSession) -> None:
    st = make(session, timeout=10)
    assert st.handle("x") == []
    assert st.countdown() is None
    assert st.tick(100.0) == []  # nothing boots later
    assert session.calls == []


def test_countdown_expiry_boots_the_default(session: FakeSession) -> None:
    st = make(session, timeout=5)
    assert st.tick(4.9) == []
    effects = st.tick(5.0)
    result = drive(st, session, effects)
    assert result is not None
    assert result.exit is MenuExit.BOOT
    assert result.decision is not None
    assert result.decision.environment == "beta"
    assert session.calls == [{"op": "boot", "environment": "beta"}]


def test_timeout_zero_or_no_default_means_no_countdown(tmp_path: Path) -> None:
    assert make(FakeSession(tmp_path), timeout=0).countdown() is None
    st = make(FakeSession(tmp_path / "b", default=None), timeout=10)
    assert st.countdown() is None
    assert st.message is not None
    assert "no default" in st.message.text


def test_navigation_keys_and_digits(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "k")
    assert st.selected_env().name == "alpha"  # type: ignore[union-attr]
    press(st, session, S.DOWN, "j")
    assert st.selected_env().name == "gamma"  # type: ignore[union-attr]
    press(st, session, "j")  # stays on the last row
    assert st.cursor == 2
    press(st, session, "g")
    assert st.cursor == 0
    press(st, session, "G")
    assert st.cursor == 2
    press(st, session, "2", S.ENTER)  # Enter after digits only confirms the row: no boot
    assert st.cursor == 1
    assert session.calls == []
    press(st, session, "9")
    assert st.message is not None
    assert "no row 9" in st.message.text


def test_two_digit_rows(session: FakeSession) -> None:
    st = make(session)
    for env in ("alpha", "beta", "gamma"):
        st.expanded.add(env)
    assert len(st.rows()) == 12
    press(st, session, "1", "2")
    assert st.cursor == 11
    assert labels(st)[11] == "gamma@s3"


def test_expand_and_collapse(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "+")
    assert labels(st) == ["alpha", "beta", "beta@s1", "beta@s2", "beta@s3", "gamma"]
    press(st, session, "j", "j")
    assert st.selected().label == "beta@s2"  # type: ignore[union-attr]
    press(st, session, S.LEFT)  # collapsing from a snapshot goes back to its environment
    assert labels(st) == ["alpha", "beta", "gamma"]
    assert st.selected().label == "beta"  # type: ignore[union-attr]
    press(st, session, " ")
    assert "beta@s1" in labels(st)
    press(st, session, " ")
    assert "beta@s1" not in labels(st)


def test_enter_boots_the_selected_environment(session: FakeSession) -> None:
    st = make(session)
    result = press(st, session, "k", S.ENTER)
    assert result is not None
    assert result.decision is not None
    assert result.decision.environment == "alpha"
    assert session.calls == [{"op": "boot", "environment": "alpha"}]


def test_boot_snapshot_says_the_snapshot_is_kept_and_asks(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "+", "j", "s")
    assert screen_of(st) is S.Screen.CONFIRM
    assert st.pending is not None
    assert any("never modified" in line for line in st.pending.lines)
    assert press(st, session, "n") is None  # anything but y cancels
    assert session.calls == []
    assert st.message is not None
    assert "cancelled" in st.message.text
    result = press(st, session, "s", "y")
    assert result is not None
    assert result.decision is not None
    assert result.decision.environment == "beta-s1"
    assert session.calls == [{"op": "boot_snapshot", "snapshot": "beta@s1"}]


def test_b_on_a_snapshot_and_s_on_an_environment_explain(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "s")
    assert st.message is not None
    assert "select a snapshot" in st.message.text
    press(st, session, "+", "j", "b")
    assert st.message is not None
    assert "s boots beta@s1" in st.message.text
    assert session.calls == []


def test_non_destructive_rollback_picks_steps(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "r")
    assert screen_of(st) is S.Screen.HISTORY
    assert [s.label for s in st.history()] == ["beta@s3", "beta@s2", "beta@s1"]
    press(st, session, "2", S.ENTER)  # digits + Enter pick the step only
    assert st.history_cursor == 1
    assert session.calls == []
    press(st, session, S.ENTER)
    assert session.calls == [{"op": "rollback", "environment": "beta", "steps": 2, "destructive": False}]
    assert screen_of(st) is S.Screen.MAIN
    assert st.message is not None
    assert "beta-s2 is now the default" in st.message.text
    assert st.selected_env().name == "beta-s2"  # type: ignore[union-attr]
    assert st.default == "beta-s2"


@pytest.mark.parametrize("typed", ["", "rollback", "ROLLBAC", "ROLLBACKX", " ROLLBACK", "yes"])
def test_destructive_rollback_wrong_word_cancels(session: FakeSession, typed: str) -> None:
    st = make(session)
    press(st, session, "r", "2", "D")
    assert screen_of(st) is S.Screen.CONFIRM
    assert st.wants_text()
    press(st, session, *typed, S.ENTER)
    assert session.calls == []
    assert screen_of(st) is S.Screen.MAIN
    assert st.message is not None
    assert "cancelled" in st.message.text


def test_destructive_rollback_escape_and_backspace(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "r", "D", *"ROLLBACKK", S.BACKSPACE)
    assert st.typed == "ROLLBACK"
    press(st, session, S.ESC)
    assert session.calls == []
    assert screen_of(st) is S.Screen.MAIN


def test_destructive_rollback_right_word(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "r", "2", "D")
    assert st.pending is not None
    assert any("s3" in line for line in st.pending.lines)  # says what is destroyed
    press(st, session, *S.ROLLBACK_WORD, S.ENTER)
    assert session.calls == [{"op": "rollback", "environment": "beta", "steps": 2, "destructive": True}]
    assert st.message is not None
    assert "destroyed: s3" in st.message.text
    assert [s.name for s in st.inventory.find("beta").snapshots] == ["s1", "s2"]  # type: ignore[union-attr]


def test_destructive_rollback_refused_for_an_origin_snapshot(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "r", S.ENTER)  # beta-s3, cloned from beta@s3: its history reaches into beta
    press(st, session, "r")
    assert st.history()[0].label == "beta@s3"
    press(st, session, "D")
    assert screen_of(st) is S.Screen.HISTORY
    assert st.message is not None
    assert "not a snapshot of beta-s3" in st.message.text


def test_roll_forward_only_for_environments_made_by_a_rollback(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "f")
    assert st.message is not None
    assert "not made by a rollback" in st.message.text
    press(st, session, "r", S.ENTER)  # now on beta-s3, made by a rollback of beta
    press(st, session, "f")
    assert screen_of(st) is S.Screen.CONFIRM
    press(st, session, "y")
    assert session.calls[-1] == {"op": "roll_forward", "environment": "beta-s3", "steps": None}
    assert st.message is not None
    assert "rolled forward" in st.message.text
    assert st.default == "beta"


def test_shell_disabled_by_configuration(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    st = make(session, allow_shell=False)
    assert press(st, session, "!") is None
    assert st.message is not None
    assert "disabled by configuration" in st.message.text
    st2 = make(session, allow_shell=True)
    assert press(st2, session, "!") == MenuResult(MenuExit.SHELL)


@pytest.mark.parametrize(("key", "exit"), [("R", MenuExit.REBOOT), ("P", MenuExit.POWEROFF)])
def test_reboot_and_power_off_ask_first(session: FakeSession, key: str, exit: MenuExit) -> None:
    st = make(session)
    assert press(st, session, key, "n") is None
    assert press(st, session, key, "y") == MenuResult(exit)


def test_help_and_journal_screens(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "?")
    assert screen_of(st) is S.Screen.HELP
    press(st, session, "q")
    assert screen_of(st) is S.Screen.MAIN
    press(st, session, "r", S.ENTER, "l")
    assert screen_of(st) is S.Screen.JOURNAL
    assert st.journal[0].action in {"activate", "rollback"}  # newest first
    press(st, session, "j", "k", S.ESC)
    assert screen_of(st) is S.Screen.MAIN


def test_session_errors_are_shown_and_the_menu_goes_on(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, fail={"boot": RefusedError("no kernel", hint="choose another")})
    st = make(session)
    assert press(st, session, S.ENTER) is None
    assert st.message == S.Message("booting beta failed: no kernel", "choose another", error=True)
    assert screen_of(st) is S.Screen.MAIN
    result = press(st, session, S.ENTER)
    assert result is not None
    assert result.exit is MenuExit.BOOT


def test_unexpected_exceptions_are_shown(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, fail={"rollback": ZeroDivisionError("boom")})
    st = make(session)
    press(st, session, "r", S.ENTER)
    assert st.message is not None
    assert st.message.error
    assert "internal error: ZeroDivisionError: boom" in st.message.text


def test_keys_are_ignored_while_busy_except_redraw(session: FakeSession) -> None:
    st = make(session)
    call = S.boot_call("beta")
    st.start(call)
    assert screen_of(st) is S.Screen.BUSY
    assert st.handle("q") == []
    assert st.handle(S.CTRL_L) == [S.Redraw()]
    st.report("importing")
    assert st.progress == "importing"


def test_unknown_keys_say_so(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "z")
    assert st.message is not None
    assert "press ? for the list of keys" in (st.message.hint or "")
    press(st, session, "KEY_F5")
    assert st.message is not None
    assert "'f5'" in st.message.text


def test_an_unreadable_pool_is_shown_not_raised(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.zfs.fail_next["x"] = RuntimeError()
    session.envs.root = "rpool/NOPE"
    st = make(session, timeout=10)
    assert st.inventory is None
    assert st.countdown() is None
    assert st.message is not None
    assert st.message.error
    assert press(st, session, S.ENTER, "j", "r", "+") is None
    assert session.calls == []


def test_every_action_has_one_key_and_a_help_line() -> None:
    keys = [k for a in S.ACTIONS for k in (a.key, *a.keys)]
    assert len(keys) == len(set(keys))
    assert all(a.help and a.label for a in S.ACTIONS)


# --- input from a noisy line ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", [S.INVALID, S.REPLACEMENT, S.UNKNOWN, S.ESC, "KEY_CTRL_C", S.TAB])
def test_every_key_stops_the_countdown_undecodable_bytes_too(session: FakeSession, key: str) -> None:
    st = make(session, timeout=10)
    assert st.handle(key) == []
    assert st.countdown() is None
    assert st.tick(100.0) == []
    assert session.calls == []
    assert screen_of(st) is S.Screen.MAIN


def test_undecodable_bytes_say_what_they_are(session: FakeSession) -> None:
    st = make(session)
    press(st, session, S.REPLACEMENT)
    assert st.message is not None
    assert "not text" in st.message.text


@pytest.mark.parametrize(
    "key",
    [S.UP, S.DOWN, S.LEFT, S.RIGHT, S.ESC, S.TAB, S.UNKNOWN, S.INVALID, S.REPLACEMENT, "KEY_CTRL_C", "KEY_F"],
)
def test_typed_word_anything_else_cancels(session: FakeSession, key: str) -> None:
    st = make(session)
    press(st, session, "r", "2", "D", *"ROLL")
    assert st.wants_text()
    press(st, session, key)
    assert screen_of(st) is S.Screen.MAIN
    assert st.pending is None
    assert st.message == S.Message("cancelled; nothing was changed")
    press(st, session, *"BACK", S.ENTER)  # ROLL<key>BACK is not the word: the rest does nothing destructive
    assert not any(c.get("destructive") for c in session.calls)


def test_typed_word_keeps_backspace_and_redraw(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "r", "D", *"ROLLX", S.BACKSPACE)
    assert st.handle(S.CTRL_L) == [S.Redraw()]  # a repaint of a garbled screen changes nothing
    press(st, session, *"BACK", S.ENTER)
    assert session.calls == [{"op": "rollback", "environment": "beta", "steps": 1, "destructive": True}]


@pytest.mark.parametrize("key", [S.ESC, S.UP, S.INVALID, "KEY_CTRL_C", "n", S.ENTER])
def test_yes_no_questions_cancel_on_anything_but_y(session: FakeSession, key: str) -> None:
    st = make(session)
    assert press(st, session, "R", key) is None
    assert st.message == S.Message("cancelled; nothing was changed")


def test_a_question_replaces_the_message_and_has_its_prompt(session: FakeSession) -> None:
    st = make(session)
    press(st, session, "z")
    assert st.message is not None
    press(st, session, "R")
    assert message_of(st) is None
    assert st.pending is not None
    assert st.pending.prompt == "Press y to reboot now; any other key cancels."
    press(st, session, "n", "r", "D")
    assert st.pending is not None
    assert st.pending.prompt.startswith("Type ROLLBACK and press Enter")


KEYS = [
    *"jkgG+-rDfl?hqnRP0123456789 sbxzZ!ROLLBACK",
    S.ENTER,
    S.ESC,
    S.UP,
    S.DOWN,
    S.LEFT,
    S.RIGHT,
    S.BACKSPACE,
    S.TAB,
    S.CTRL_L,
    S.UNKNOWN,
    S.INVALID,
    S.REPLACEMENT,
    "KEY_CTRL_C",
    "é",
]


@hst.composite
def attempts(draw: hst.DrawFn) -> list[str]:
    """The way to a destructive rollback (r, a step, D, the word, Enter), often with a key thrown in."""
    word = list(S.ROLLBACK_WORD)
    if draw(hst.booleans()):
        word.insert(draw(hst.integers(0, len(word))), draw(hst.sampled_from(KEYS)))
    return ["r", draw(hst.sampled_from(["1", "2", "3", "j", ""])), "D", *word, S.ENTER]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hst.lists(hst.one_of(hst.sampled_from(KEYS).map(lambda k: [k]), attempts()), max_size=12))
def test_no_destructive_call_without_the_typed_word(phrases: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = FakeSession(Path(tmp))
        st = make(session, timeout=10)
        for key in (k for phrase in phrases for k in phrase if k):
            typed, asked = st.typed, st.wants_text()
            before = len(session.calls)
            result = drive(st, session, st.handle(key))
            for call in session.calls[before:]:
                if call.get("destructive"):  # only Enter on the typed word, in its question
                    assert asked
                    assert key == S.ENTER
                    assert typed == S.ROLLBACK_WORD
            if result is not None:  # the menu ended; a front end would start it again: go on
                assert result.exit is not MenuExit.SHELL or st.allow_shell
