"""The menu as a pure state machine: keys and clock ticks in, effects out. No terminal, no threads.

The front ends (app.py: full screen; lines.py: numbered lines) feed it normalised keys (`handle`), the
time (`tick`) and the outcome of session calls (`finish`), and carry out the effects it returns:

  Call   run a session call (slow ones in a worker thread), then hand its outcome to `finish`
  Exit   leave the menu with a MenuResult
  Redraw repaint the whole screen (Ctrl-L)

Actions live in one registry (`ACTIONS`): a key, a label, an availability predicate that returns the reason
an action cannot be used now (or None), and a handler. Adding an action is one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bootagent.boot.session import BootDecision, MenuExit, MenuResult, Progress, RecoverySession
from bootagent.environments import Inventory, RollbackResult, RollForwardResult
from bootagent.errors import BootagentError
from bootagent.journal import JournalEntry
from bootagent.model import BootEnvironment, Snapshot
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan, screen_lines

# --- keys ----------------------------------------------------------------------------------------------
# Printable keys are themselves ("j", "+", "7"); the others have names (blessed's, where it has one).
UP = "KEY_UP"
DOWN = "KEY_DOWN"
LEFT = "KEY_LEFT"
RIGHT = "KEY_RIGHT"
ENTER = "KEY_ENTER"
ESC = "KEY_ESCAPE"
BACKSPACE = "KEY_BACKSPACE"
PGUP = "KEY_PGUP"
PGDN = "KEY_PGDOWN"
HOME = "KEY_HOME"
END = "KEY_END"
TAB = "KEY_TAB"
CTRL_L = "KEY_CTRL_L"
UNKNOWN = "KEY_UNKNOWN"  # a control character or a sequence without a name (Ctrl-C, NUL, XOFF, ...)
INVALID = "KEY_INVALID"  # bytes that are no text in the terminal's encoding (line noise, a parity mismatch)
REPLACEMENT = "\ufffd"  # what a decoder with errors="replace" makes of them

ROLLBACK_WORD = "ROLLBACK"
RESET_WORDS = {ResetMode.KEEP_DATA: "RESET", ResetMode.ERASE_ALL: "ERASE"}
RESET_TITLES = {ResetMode.KEEP_DATA: "keep the customer's data", ResetMode.ERASE_ALL: "ERASE EVERYTHING"}
JOURNAL_LIMIT = 200
MAX_TYPED = 40

# Keys that move around, listed on the help screen (the actions list themselves).
NAVIGATION_HELP: tuple[tuple[str, str], ...] = (
    ("Up / k", "previous row"),
    ("Down / j", "next row"),
    ("PgUp / PgDn", "a page up / down"),
    ("Home g / End G", "first / last row"),
    ("1..99 Enter", "go to the row with that number"),
    ("Right / +", "show the snapshots of an environment"),
    ("Left / -", "hide them"),
    ("Space", "show / hide the snapshots"),
    ("Esc / q", "back (from any other screen); cancel"),
    ("Ctrl-L", "redraw the screen"),
)


class Screen(StrEnum):
    MAIN = "main"
    HELP = "help"
    JOURNAL = "journal"
    HISTORY = "history"  # pick how far to roll back
    CONFIRM = "confirm"
    BUSY = "busy"


def is_text(key: str) -> bool:
    """A key that types a character (not a named key, a control character or undecodable bytes)."""
    return len(key) == 1 and key.isprintable() and key != REPLACEMENT


def is_digit(key: str) -> bool:
    """0 to 9 (str.isdigit says yes to '³' and '٣' too, which int() then refuses)."""
    return len(key) == 1 and "0" <= key <= "9"


# --- effects -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """A session call. `run` may be slow (the front end runs it in a worker thread); `done` turns its
    result into more effects (it is not called when `run` raised: the error is shown instead)."""

    label: str  # what the screen says while it runs
    run: Callable[[RecoverySession, Progress], object] = field(compare=False)
    done: Callable[[MenuState, object], list[Effect]] = field(compare=False)
    changes_pool: bool = False


@dataclass(frozen=True)
class Exit:
    result: MenuResult


@dataclass(frozen=True)
class Redraw:
    pass


Effect = Call | Exit | Redraw


# --- values the screens show ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    text: str
    hint: str | None = None
    error: bool = False


@dataclass(frozen=True)
class Confirm:
    """A question before an action. `word` None: y/N. Otherwise the word must be typed in full.

    `lines` are paragraphs of explanation (the screen wraps them, and shortens them when it is small);
    the title and the `prompt` (what to press) are always shown whole."""

    title: str
    lines: tuple[str, ...]
    effects: tuple[Effect, ...]
    word: str | None = None
    prompt: str = "Press y to go ahead; any other key cancels."
    # a password: what is typed is not shown, and `check` (not equality with `word`) decides
    check: Callable[[str], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Row:
    """One row of the main list: an environment, or one of its snapshots (when expanded)."""

    env: BootEnvironment
    snapshot: Snapshot | None = None
    last: bool = False  # the last snapshot shown under its environment

    @property
    def label(self) -> str:
        return self.snapshot.label if self.snapshot else self.env.name


@dataclass(frozen=True)
class Action:
    key: str
    label: str  # short, for the status line
    help: str  # one line, for the help screen
    available: Callable[[MenuState], str | None]  # None, or why it cannot be used now
    run: Callable[[MenuState], list[Effect]]
    keys: tuple[str, ...] = ()  # other keys doing the same
    key_name: str = ""  # how the help screen spells the key, when not the key itself
    in_status: bool = True


# --- the state -----------------------------------------------------------------------------------------
class MenuState:
    def __init__(
        self,
        inventory: Inventory | None,
        default: str | None,
        *,
        allow_shell: bool = True,
        timeout: int = 0,
        now: float = 0.0,
        title: str = "bootagent boot menu",
        password: Callable[[str], bool] | None = None,
    ) -> None:
        self.inventory = inventory
        self.password = password  # protection: the resets and the shell ask for it
        self.default = default
        self.allow_shell = allow_shell
        self.title = title
        self.now = now
        self.screen = Screen.MAIN
        self.expanded: set[str] = set()
        self._rows: tuple[tuple[Inventory, frozenset[str]], list[Row]] | None = None
        self.cursor = 0
        self.list_top = 0
        self.page = 10  # rows of the list on screen (the front end sets it from the screen size)
        self.width = 80  # columns of the screen (the front end sets it; the help text is wrapped to it)
        self.digits = ""
        self.message: Message | None = None
        self.pending: Confirm | None = None
        self.typed = ""
        self.history_env: str | None = None
        self.history_cursor = 0
        self.history_top = 0
        self.journal: list[JournalEntry] = []
        self.journal_top = 0
        self.help_top = 0
        self.busy: Call | None = None
        self.busy_since = 0.0
        self.progress = ""
        self.back_to = Screen.MAIN
        self.initial: list[Effect] = []  # what the front end does first (a reset chosen in GRUB)
        self.deadline: float | None = None
        if default is not None and timeout > 0 and inventory is not None:
            self.deadline = now + timeout
        self._select_env(default)

    # --- what is shown -------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        """The list's rows (the same list object until the inventory or what is expanded changes: a frame
        asks for it many times, and a pool may have thousands of snapshots)."""
        if self.inventory is None:
            return []
        key = (self.inventory, frozenset(self.expanded))
        cached = self._rows
        if cached is not None and cached[0][0] is key[0] and cached[0][1] == key[1]:
            return cached[1]
        out: list[Row] = []
        for env in self.inventory.environments:
            out.append(Row(env))
            if env.name in self.expanded:
                snaps = sorted(env.snapshots, key=lambda s: s.createtxg)
                out.extend(Row(env, s, last=i == len(snaps) - 1) for i, s in enumerate(snaps))
        self._rows = (key, out)
        return out

    def selected(self) -> Row | None:
        rows = self.rows()
        return rows[self.cursor] if 0 <= self.cursor < len(rows) else None

    def selected_env(self) -> BootEnvironment | None:
        row = self.selected()
        return row.env if row else None

    def countdown(self) -> int | None:
        """Whole seconds left before the default boots, or None when no countdown runs."""
        if self.deadline is None:
            return None
        # rounded first: (now + 30) - now is 30.000000000000004 for many a clock value, and "31 s" is wrong
        return max(0, math.ceil(round(self.deadline - self.now, 6)))

    def history(self) -> list[Snapshot]:
        if self.inventory is None or self.history_env is None:
            return []
        env = next((e for e in self.inventory.environments if e.name == self.history_env), None)
        return self.inventory.history(env) if env else []

    def busy_seconds(self) -> float:
        return max(0.0, self.now - self.busy_since) if self.busy else 0.0

    def wants_text(self) -> bool:
        """A word is being typed (line mode sends a whole line as keys)."""
        return self.screen is Screen.CONFIRM and self.pending is not None and self.pending.word is not None

    def actions(self) -> list[tuple[Action, str | None]]:
        """Every main-screen action with the reason it is unavailable now (None: available)."""
        return [(a, a.available(self)) for a in ACTIONS]

    # --- input ---------------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Effect]:
        self.now = now
        if self.deadline is not None and now >= self.deadline and self.busy is None:
            self.deadline = None
            if self.default is not None:
                self.message = Message(f"the countdown ended: booting {self.default}")
                return [boot_call(self.default)]
        return []

    def stop_countdown(self) -> None:
        self.deadline = None

    def handle(self, key: str) -> list[Effect]:
        if not key:
            return []
        if key == REPLACEMENT:
            key = INVALID
        if self.busy is not None:
            return [Redraw()] if key == CTRL_L else []
        self.stop_countdown()  # any key stops it, undecodable bytes too (someone is there, or a line is bad)
        if key == CTRL_L:
            return [Redraw()]
        handler = {
            Screen.MAIN: self._main_key,
            Screen.HELP: self._help_key,
            Screen.JOURNAL: self._journal_key,
            Screen.HISTORY: self._history_key,
            Screen.CONFIRM: self._confirm_key,
        }.get(self.screen)
        return handler(key) if handler else []

    def start(self, call: Call) -> None:
        """The front end is about to run `call`."""
        self.back_to = self.screen if self.screen is not Screen.BUSY else Screen.MAIN
        self.busy = call
        self.busy_since = self.now
        self.progress = ""
        self.screen = Screen.BUSY
        self.stop_countdown()

    def report(self, message: str) -> None:
        """A Progress message from the running call."""
        self.progress = message

    def finish(self, call: Call, outcome: object) -> list[Effect]:
        """The outcome of `call`: its result, or the exception it raised."""
        self.busy = None
        self.progress = ""
        self.screen = self.back_to if self.back_to not in (Screen.CONFIRM, Screen.BUSY) else Screen.MAIN
        if isinstance(outcome, BootagentError):
            self.message = Message(f"{call.label} failed: {outcome.message}", outcome.hint, error=True)
            return []
        if isinstance(outcome, BaseException):
            self.message = Message(
                f"{call.label} failed: internal error: {type(outcome).__name__}: {outcome}",
                "this is a bug; the details are in the kernel log (dmesg)",
                error=True,
            )
            return []
        return call.done(self, outcome)

    def set_inventory(self, inventory: Inventory, default: str | None, select: str | None = None) -> None:
        current = self.selected()
        self.inventory = inventory
        self.default = default
        names = {e.name for e in inventory.environments}
        self.expanded &= names
        if self.history_env not in names:
            self.history_env = None
        if select is not None:
            self._select_env(select)
        elif current is not None:
            self._select_label(current.label) or self._select_env(current.env.name)
        self.cursor = min(self.cursor, max(0, len(self.rows()) - 1))
        self._scroll()

    # --- the main screen -----------------------------------------------------------------------------
    def _main_key(self, key: str) -> list[Effect]:
        rows = self.rows()
        if is_digit(key):
            return self._digit(key, len(rows))
        if key == ENTER and self.digits:
            self.digits = ""
            return []
        self.digits = ""
        moves = {
            UP: -1,
            "k": -1,
            DOWN: 1,
            "j": 1,
            PGUP: -max(1, self.page - 1),
            PGDN: max(1, self.page - 1),
            HOME: -len(rows),
            "g": -len(rows),
            END: len(rows),
            "G": len(rows),
        }
        if key in moves:
            self._move(moves[key])
            return []
        if key in (RIGHT, "+"):
            self._expand(True)
            return []
        if key in (LEFT, "-"):
            self._expand(False)
            return []
        if key == " ":
            env = self.selected_env()
            self._expand(env is not None and env.name not in self.expanded)
            return []
        if key in (ESC, "q"):
            self.message = None
            return []
        for action in ACTIONS:
            if key == action.key or key in action.keys:
                reason = action.available(self)
                if reason is not None:
                    self.message = Message(f"{action.label}: {reason}", error=True)
                    return []
                self.message = None
                return action.run(self)
        if key == INVALID:
            self.message = Message(
                "ignored input that is not text (line noise, or a terminal set to another encoding)",
                "press ? for the list of keys",
            )
            return []
        shown = key if is_text(key) else key.removeprefix("KEY_").lower()
        self.message = Message(f"the key {shown!r} does nothing here", "press ? for the list of keys")
        return []

    def _digit(self, key: str, count: int) -> list[Effect]:
        candidate = self.digits + key
        if len(candidate) > 3 or not 1 <= int(candidate) <= count:
            candidate = key if 1 <= int(key) <= count else ""
        self.digits = candidate
        if candidate:
            self.cursor = int(candidate) - 1
            self._scroll()
        else:
            self.message = Message(f"there is no row {key}", f"rows are numbered 1 to {count}")
        return []

    def _move(self, delta: int) -> None:
        count = len(self.rows())
        if count:
            self.cursor = max(0, min(count - 1, self.cursor + delta))
        self._scroll()

    def _scroll(self) -> None:
        page = max(1, self.page)
        if self.cursor < self.list_top:
            self.list_top = self.cursor
        elif self.cursor >= self.list_top + page:
            self.list_top = self.cursor - page + 1
        self.list_top = max(0, min(self.list_top, max(0, len(self.rows()) - page)))

    def _expand(self, expand: bool) -> None:
        row = self.selected()
        if row is None:
            return
        if expand:
            if not row.env.snapshots:
                self.message = Message(f"{row.env.name} has no snapshots")
            self.expanded.add(row.env.name)
        else:
            self.expanded.discard(row.env.name)
            self._select_env(row.env.name)
        self._scroll()

    def _select_env(self, name: str | None) -> bool:
        for i, row in enumerate(self.rows()):
            if row.snapshot is None and row.env.name == name:
                self.cursor = i
                self._scroll()
                return True
        return False

    def _select_label(self, label: str) -> bool:
        for i, row in enumerate(self.rows()):
            if row.label == label:
                self.cursor = i
                self._scroll()
                return True
        return False

    def ask(self, confirm: Confirm) -> list[Effect]:
        self.pending = confirm
        self.typed = ""
        self.message = None  # the question is the message now (and a small screen needs the rows)
        self.back_to = self.screen
        self.screen = Screen.CONFIRM
        return []

    # --- the other screens ---------------------------------------------------------------------------
    def _scroll_key(self, key: str, top: int, count: int) -> int | None:
        """Scrolling keys of the help and journal screens: the new top row, or None (not a scroll key)."""
        page = max(1, self.page)
        steps = {UP: -1, "k": -1, DOWN: 1, "j": 1, PGUP: -page, PGDN: page, " ": page, HOME: -count}
        steps |= {"g": -count, END: count, "G": count}
        if key not in steps:
            return None
        return max(0, min(top + steps[key], max(0, count - page)))

    def _help_key(self, key: str) -> list[Effect]:
        from bootagent.tui.render import help_lines  # the length of the text decides the scrolling

        top = self._scroll_key(key, self.help_top, len(help_lines(self, self.width)))
        if top is not None:
            self.help_top = top
        elif key in (ESC, "q", "?", "h", ENTER, LEFT):
            self.screen = Screen.MAIN
        return []

    def _journal_key(self, key: str) -> list[Effect]:
        top = self._scroll_key(key, self.journal_top, len(self.journal))
        if top is not None:
            self.journal_top = top
        elif key in (ESC, "q", "l", ENTER, LEFT):
            self.screen = Screen.MAIN
        return []

    def _history_key(self, key: str) -> list[Effect]:
        history = self.history()
        env = self.history_env
        if env is None or not history:
            self.screen = Screen.MAIN
            return []
        if is_digit(key):
            candidate = self.digits + key
            if not 1 <= int(candidate) <= len(history):
                candidate = key if 1 <= int(key) <= len(history) else ""
            self.digits = candidate
            if candidate:
                self.history_cursor = int(candidate) - 1
            self._history_scroll(len(history))
            return []
        if key == ENTER and self.digits:
            self.digits = ""
            return []
        self.digits = ""
        moves = {UP: -1, "k": -1, DOWN: 1, "j": 1, PGUP: -self.page, PGDN: self.page}
        moves |= {HOME: -len(history), "g": -len(history), END: len(history), "G": len(history)}
        if key in moves:
            self.history_cursor = max(0, min(len(history) - 1, self.history_cursor + moves[key]))
            self._history_scroll(len(history))
            return []
        if key in (ESC, "q", LEFT):
            self.screen = Screen.MAIN
            self.message = Message("rollback cancelled; nothing was changed")
            return []
        steps = self.history_cursor + 1
        target = history[self.history_cursor]
        if key in (ENTER, "y", "r"):
            self.screen = Screen.MAIN
            return [rollback_call(env, steps, target, destructive=False)]
        if key == "D":
            inv = self.inventory
            assert inv is not None
            owner = inv.find(env)
            if target.dataset != owner.dataset:
                self.message = Message(
                    f"{target.label} is not a snapshot of {env}: an in-place rollback stays in one "
                    "environment",
                    "press Enter for a non-destructive rollback (a new environment)",
                    error=True,
                )
                return []
            newer = [s for s in owner.snapshots if s.createtxg > target.createtxg]
            names = ", ".join(s.name for s in newer) or "none"
            return self.ask(
                Confirm(
                    title=f"Roll {env} back IN PLACE to {target.label}",
                    lines=(
                        f"This DESTROYS everything in {env} written after {target.label}, "
                        f"and the {len(newer)} newer snapshot(s): {names}.",
                        "This cannot be undone. A non-destructive rollback (Enter on the previous "
                        "screen) keeps everything instead.",
                    ),
                    effects=(rollback_call(env, steps, target, destructive=True),),
                    word=ROLLBACK_WORD,
                    prompt=f"Type {ROLLBACK_WORD} and press Enter to go ahead; anything else cancels.",
                )
            )
        self.message = Message(
            "Enter rolls back (a new environment), D rolls back in place (destroys), q goes back"
        )
        return []

    def _history_scroll(self, count: int) -> None:
        page = max(1, self.page)
        if self.history_cursor < self.history_top:
            self.history_top = self.history_cursor
        elif self.history_cursor >= self.history_top + page:
            self.history_top = self.history_cursor - page + 1
        self.history_top = max(0, min(self.history_top, max(0, count - page)))

    def _confirm_key(self, key: str) -> list[Effect]:
        pending = self.pending
        if pending is None:
            self.screen = Screen.MAIN
            return []
        if pending.word is None:
            yes = key in ("y", "Y")
            return self._close_confirm(pending, yes, "")
        if key == ENTER:
            if pending.check is not None:
                ok = pending.check(self.typed)
                return self._close_confirm(pending, ok, "" if ok else "(wrong password)")
            return self._close_confirm(pending, self.typed == pending.word, self.typed)
        if key == BACKSPACE:
            self.typed = self.typed[:-1]
            return []
        if is_text(key):
            self.typed = (self.typed + key)[:MAX_TYPED]
            return []
        # anything else cancels, as the screen says: Esc, Ctrl-C, an arrow (ROLL<Up>BACK is not the word),
        # a control character, line noise
        return self._close_confirm(pending, False, "")

    def _close_confirm(self, pending: Confirm, yes: bool, typed: str) -> list[Effect]:
        self.pending = None
        self.typed = ""
        self.screen = Screen.MAIN
        if yes:
            self.message = None
            return list(pending.effects)
        if pending.check is not None and typed:
            self.message = Message("cancelled: wrong password; nothing was changed", error=True)
        elif pending.word is not None and typed:
            self.message = Message(f"cancelled: {typed!r} is not {pending.word}; nothing was changed")
        else:
            self.message = Message("cancelled; nothing was changed")
        return []


# --- session calls -------------------------------------------------------------------------------------
def _exit_boot(state: MenuState, decision: object) -> list[Effect]:
    assert isinstance(decision, BootDecision)
    return [Exit(MenuResult(MenuExit.BOOT, decision))]


def boot_call(environment: str) -> Call:
    return Call(f"booting {environment}", lambda s, p: s.boot(environment), _exit_boot)


def boot_snapshot_call(snapshot: str) -> Call:
    return Call(
        f"booting {snapshot} as a new environment",
        lambda s, p: s.boot_snapshot(snapshot, p),
        _exit_boot,
        changes_pool=True,
    )


def refresh_call(select: str | None = None) -> Call:
    def done(state: MenuState, outcome: object) -> list[Effect]:
        assert isinstance(outcome, tuple)
        inventory, default = outcome
        state.set_inventory(inventory, default, select)
        return []

    return Call("reading the boot environments", lambda s, p: (s.inventory(), s.default_environment()), done)


def rollback_call(environment: str, steps: int, target: Snapshot, *, destructive: bool) -> Call:
    def done(state: MenuState, outcome: object) -> list[Effect]:
        assert isinstance(outcome, RollbackResult)
        if outcome.destructive:
            gone = ", ".join(n.rsplit("@", 1)[-1] for n in outcome.destroyed) or "nothing"
            state.message = Message(
                f"{environment} was rolled back in place to {outcome.target.label}; destroyed: {gone}"
            )
        else:
            state.message = Message(
                f"{environment} was rolled back to {outcome.target.label}: the new environment "
                f"{outcome.environment} is now the default ({environment} is kept)",
                "press Enter to boot it",
            )
        return [refresh_call(outcome.environment)]

    how = "in place" if destructive else "(a new environment)"
    return Call(
        f"rolling {environment} back {steps} step(s) to {target.label} {how}",
        lambda s, p: s.rollback(environment, steps=steps, destructive=destructive, progress=p),
        done,
        changes_pool=True,
    )


def roll_forward_call(environment: str) -> Call:
    def done(state: MenuState, outcome: object) -> list[Effect]:
        assert isinstance(outcome, RollForwardResult)
        made = " (a new environment)" if outcome.created else ""
        state.message = Message(
            f"{environment} was rolled forward to {outcome.source}: {outcome.environment}{made} is now "
            "the default",
            "press Enter to boot it",
        )
        return [refresh_call(outcome.environment)]

    return Call(
        f"rolling {environment} forward",
        lambda s, p: s.roll_forward(environment, steps=None, progress=p),
        done,
        changes_pool=True,
    )


def journal_call() -> Call:
    def done(state: MenuState, outcome: object) -> list[Effect]:
        assert isinstance(outcome, Sequence)
        state.journal = list(reversed(list(outcome)))  # newest first
        state.journal_top = 0
        state.screen = Screen.JOURNAL
        return []

    return Call("reading the journal", lambda s, p: s.journal(JOURNAL_LIMIT), done)


def reset_plan_call(mode: ResetMode) -> Call:
    """Work out what the reset would keep and erase, then ask for the mode's word."""

    def done(state: MenuState, outcome: object) -> list[Effect]:
        assert isinstance(outcome, ResetPlan)
        word = RESET_WORDS[outcome.mode]
        what = (
            "Everything but the factory baseline and the agent's journal is erased; the customer datasets "
            "are destroyed and re-created empty."
            if outcome.mode is ResetMode.ERASE_ALL
            else "The customer's data is kept, untouched. The system and its configuration go back to the "
            "factory state."
        )
        return state.ask(
            Confirm(
                title=f"Factory reset: {RESET_TITLES[outcome.mode]} (baseline {outcome.baseline})",
                lines=(what, *screen_lines(outcome)),
                effects=(reset_exit(outcome),),
                word=word,
                prompt=f"Type {word} and press Enter to reset; anything else cancels.",
            )
        )

    return Call(f"planning the factory reset ({mode.value})", lambda s, p: s.plan_reset(mode), done)


def reset_exit(plan: ResetPlan) -> Exit:
    """The menu ends; the agent carries the reset out on the plain console, a line per step (a log that
    remote hands on a slow serial line can follow, and that stays on the screen)."""
    return Exit(MenuResult(MenuExit.RESET, reset=plan))


def guarded(state: MenuState, what: str, effects: Sequence[Effect]) -> list[Effect]:
    """`effects`, after the password when one is configured."""
    if state.password is None:
        return list(effects)
    return state.ask(
        Confirm(
            title=f"Password for {what}",
            lines=("This action is protected (protection.password_pbkdf2 in the configuration).",),
            effects=tuple(effects),
            word="password",
            prompt="Type the password and press Enter; anything else cancels.",
            check=state.password,
        )
    )


def _reset(mode: ResetMode) -> Callable[[MenuState], list[Effect]]:
    def run(state: MenuState) -> list[Effect]:
        return guarded(state, f"the factory reset ({mode.value})", [reset_plan_call(mode)])

    return run


# --- the action registry -------------------------------------------------------------------------------
def _need_env(state: MenuState) -> str | None:
    return None if state.selected() is not None else "there is no boot environment to act on"


def _need_env_row(state: MenuState) -> str | None:
    row = state.selected()
    if row is None:
        return "there is no boot environment to boot"
    if row.snapshot is not None:
        return f"a snapshot is selected: s boots {row.snapshot.label} as a new environment"
    return None


def _need_snapshot_row(state: MenuState) -> str | None:
    row = state.selected()
    if row is None or row.snapshot is None:
        return "select a snapshot first (+ or Right shows the snapshots of an environment)"
    return None


def _boot(state: MenuState) -> list[Effect]:
    env = state.selected_env()
    assert env is not None
    return [boot_call(env.name)]


def _boot_snapshot(state: MenuState) -> list[Effect]:
    row = state.selected()
    assert row is not None
    assert row.snapshot is not None
    label = row.snapshot.label
    return state.ask(
        Confirm(
            title=f"Boot snapshot {label}",
            lines=(
                f"A new boot environment is cloned from {label} and booted.",
                "The snapshot itself is never modified, and nothing is destroyed.",
            ),
            effects=(boot_snapshot_call(label),),
        )
    )


def _enter(state: MenuState) -> list[Effect]:
    row = state.selected()
    return _boot_snapshot(state) if row is not None and row.snapshot is not None else _boot(state)


def _can_rollback(state: MenuState) -> str | None:
    env = state.selected_env()
    if env is None or state.inventory is None:
        return "there is no boot environment to roll back"
    if not state.inventory.history(env):
        return f"{env.name} has no earlier state (no snapshots)"
    return None


def _rollback(state: MenuState) -> list[Effect]:
    env = state.selected_env()
    assert env is not None
    state.history_env = env.name
    state.history_cursor = 0
    state.history_top = 0
    state.screen = Screen.HISTORY
    return []


def _can_roll_forward(state: MenuState) -> str | None:
    env = state.selected_env()
    if env is None:
        return "there is no boot environment"
    if not env.rolled_back_from:
        return f"{env.name} was not made by a rollback"
    return None


def _roll_forward(state: MenuState) -> list[Effect]:
    env = state.selected_env()
    assert env is not None
    assert env.rolled_back_from
    return state.ask(
        Confirm(
            title=f"Roll {env.name} forward",
            lines=(
                f"{env.name} was made by rolling {env.rolled_back_from} back.",
                f"Rolling forward makes the state the rollback started from ({env.rolled_back_from}) "
                "the default again (a new environment if it has to be cloned). Nothing is destroyed.",
            ),
            effects=(roll_forward_call(env.name),),
        )
    )


def _can_shell(state: MenuState) -> str | None:
    return None if state.allow_shell else "disabled by configuration (console.allow_shell)"


def _confirm_exit(what: str, exit: MenuExit) -> Callable[[MenuState], list[Effect]]:
    def run(state: MenuState) -> list[Effect]:
        return state.ask(
            Confirm(
                title=f"{what.capitalize()}?",
                lines=(),
                effects=(Exit(MenuResult(exit)),),
                prompt=f"Press y to {what} now; any other key cancels.",
            )
        )

    return run


def _help(state: MenuState) -> list[Effect]:
    state.help_top = 0
    state.screen = Screen.HELP
    return []


def _always(state: MenuState) -> str | None:
    return None


ACTIONS: tuple[Action, ...] = (
    Action(ENTER, "boot", "boot the selected environment (or snapshot)", _need_env, _enter, key_name="Enter"),
    Action("b", "boot", "boot the selected boot environment", _need_env_row, _boot, in_status=False),
    Action(
        "s",
        "snapshot",
        "clone the selected snapshot into a new environment, boot that",
        _need_snapshot_row,
        _boot_snapshot,
    ),
    Action(
        "r",
        "rollback",
        "roll back (pick the steps); D there: in place, typed ROLLBACK",
        _can_rollback,
        _rollback,
    ),
    Action("f", "fwd", "roll forward an environment made by a rollback", _can_roll_forward, _roll_forward),
    Action("l", "log", "the journal of changes (log)", _always, lambda st: [journal_call()]),
    Action(
        "!",
        "shell",
        "a recovery shell",
        _can_shell,
        lambda st: guarded(st, "the shell", [Exit(MenuResult(MenuExit.SHELL))]),
    ),
    Action(
        "F",
        "reset",
        "factory reset, KEEPING the customer's data (lists what goes, typed RESET)",
        _always,
        _reset(ResetMode.KEEP_DATA),
        in_status=False,
    ),
    Action(
        "E",
        "erase",
        "factory reset, ERASING everything (lists what goes, typed ERASE)",
        _always,
        _reset(ResetMode.ERASE_ALL),
        in_status=False,
    ),
    Action("R", "reboot", "reboot (asks first)", _always, _confirm_exit("reboot", MenuExit.REBOOT)),
    Action("P", "off", "power off (asks first)", _always, _confirm_exit("power off", MenuExit.POWEROFF)),
    Action("?", "help", "this help", _always, _help, keys=("h",), key_name="? / h"),
)
