"""The menu as numbered lines, for terminals that cannot address the cursor (TERM=dumb), pipes and the
slowest serial links: the same state machine, the same actions and confirmations, the same countdown.

Each input line is one command: a number picks a row (or a rollback step), a letter is that key, an empty
line is Enter; while a word is asked for (ROLLBACK), the whole line is the word. While the countdown runs, a
line (an empty one too) only stops it. Only what changed is printed again (the list when it changed, the
selection's details when the selection moved).

The end of the input (Ctrl-D on a terminal, a closed pipe, a console that hung up) means "nobody there",
as in the full-screen menu: nothing is done because of it, the countdown goes on (and boots the default
when it ends), and without one the menu waits, looking at the input again now and then.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from typing import TextIO

from bootagent.boot.session import MenuResult, RecoverySession
from bootagent.tui.output import Output
from bootagent.tui.render import (
    ASCII,
    busy_lines,
    clean,
    confirm_lines,
    details_lines,
    help_lines,
    history_intro,
    history_lines,
    journal_lines,
    list_header,
    list_layout,
    list_row,
)
from bootagent.tui.settings import DEFAULT_COLS, MenuSettings
from bootagent.tui.state import (
    DOWN,
    ENTER,
    ESC,
    UP,
    Call,
    Effect,
    Exit,
    MenuState,
    Redraw,
    Screen,
)

LOG = logging.getLogger(__name__)

EOF = object()
EOF_RETRY = 0.5  # seconds after an end of input before the input is read again
# Words a person may type instead of a key in line mode.
WORDS = {"up": UP, "down": DOWN, "back": ESC, "esc": ESC, "quit": "q", "help": "?"}


class LineReader:
    """Lines from `stdin`, with a timeout when it has a file descriptor (select); reads raw bytes so no
    buffering hides a line from select.

    An end of input is reported (EOF) each time a read says so, and it is never taken as final: a terminal
    is still there after a Ctrl-D, and a console may come back. But the input is read again only EOF_RETRY
    seconds after one: a closed pipe or a hung-up terminal is "readable" at once, for ever, and reading it
    without a pause would be a busy loop."""

    def __init__(
        self,
        stdin: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stdin = stdin
        try:
            self.fd: int | None = stdin.fileno()
        except (OSError, ValueError, AttributeError):
            self.fd = None
        self.clock = clock
        self.sleep = sleep
        self.buffer = b""
        self.eof_at: float | None = None  # when a read last said "end of input"

    def _read(self, deadline: float | None) -> bytes | None:
        """What the input has (b"" at its end, or when it cannot be read), None when the deadline passed."""
        if self.fd is None:
            try:
                return self.stdin.readline().encode("utf-8", "replace")
            except (OSError, ValueError):
                return b""
        left = None if deadline is None else max(0.0, deadline - self.clock())
        try:
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            return os.read(self.fd, 1024)
        except BlockingIOError:
            return None
        except (OSError, ValueError):  # EIO from a console that went away, a closed descriptor
            return b""

    def readline(self, timeout: float | None) -> str | None | object:
        """A line without its newline, None when the timeout passed, EOF when the input said it ended."""
        deadline = None if timeout is None else self.clock() + timeout
        while b"\n" not in self.buffer and b"\r" not in self.buffer:
            if self.eof_at is not None:
                again = self.eof_at + EOF_RETRY
                if deadline is not None and deadline < again:
                    self.sleep(max(0.0, deadline - self.clock()))
                    return None
                self.sleep(max(0.0, again - self.clock()))
                self.eof_at = None
            chunk = self._read(deadline)
            if chunk is None:
                return None
            if not chunk:
                self.eof_at = self.clock()
                if self.buffer:  # a last line without its newline
                    line, self.buffer = self.buffer, b""
                    return line.decode("utf-8", "replace")
                return EOF
            self.buffer += chunk
        cut = min(i for i in (self.buffer.find(b"\n"), self.buffer.find(b"\r")) if i >= 0)
        line, rest = self.buffer[:cut], self.buffer[cut + 1 :]
        if self.buffer[cut : cut + 2] == b"\r\n":
            rest = self.buffer[cut + 2 :]
        self.buffer = rest
        return line.decode("utf-8", "replace")


def line_keys(state: MenuState, line: str) -> list[str]:
    """The keys one input line stands for."""
    text = line.strip()
    if state.wants_text():
        return [*text, ENTER]
    if not text:
        return [ENTER]
    if text.isascii() and text.isdigit():
        return [*text, ENTER]
    if text.lower() in WORDS:
        return [WORDS[text.lower()]]
    if len(text) == 1:
        return [text]
    return ["KEY_UNKNOWN_LINE"]


class LinePrinter:
    def __init__(self, out: TextIO, settings: MenuSettings) -> None:
        self.out = Output(out)  # never raises: a console that hung up is written to in vain
        self.settings = settings
        self.width = max(40, (settings.cols or DEFAULT_COLS) - 1)
        self.shown: dict[str, list[str]] = {}

    def write(self, text: str) -> None:
        text = clean(text, self.settings.ascii) if "\n" not in text else text
        self.out.write(text.replace("\n", "\r\n") if self.settings.serial else text)

    def say(self, text: str) -> None:
        self.write(clean(text, self.settings.ascii) + "\n")

    def block(self, name: str, lines: list[str], *, force: bool = False) -> None:
        lines = [line.rstrip() for line in lines]
        if force or self.shown.get(name) != lines:
            self.shown[name] = lines
            for line in lines:
                self.say(line)

    def forget(self) -> None:
        self.shown.clear()

    def show(self, state: MenuState) -> None:
        ascii_only = self.settings.ascii
        width = self.width
        if state.screen is Screen.MAIN:
            rows = state.rows()
            if state.inventory is None:
                listing = ["(the boot environments could not be read)"]
            else:
                layout = list_layout(state, width, ASCII, ascii_only)
                listing = [list_header(width, ASCII, layout)] + [
                    " " + list_row(state, row, i + 1, width, ASCII, ascii_only, layout)[1:]
                    for i, row in enumerate(rows)
                ]
            self.block("list", listing)
            row = state.selected()
            if row is not None:
                details = details_lines(state, width, 12, ASCII, ascii_only)
                self.block(
                    "details",
                    [f"selected: {state.cursor + 1} {row.label}"]
                    + ["  " + line for line in details[1:] if line.strip()],
                )
        elif state.screen is Screen.HELP:
            self.block("help", help_lines(state))
        elif state.screen is Screen.JOURNAL:
            self.block("journal", ["Journal (newest first):", *journal_lines(state, ascii_only)])
        elif state.screen is Screen.HISTORY:
            self.block("history", [*history_intro(state), *history_lines(state, width, ASCII, ascii_only)])
        elif state.screen is Screen.CONFIRM:
            self.block("confirm", confirm_lines(state, width))
        if state.message is not None:
            self.block(
                "message",
                [("error: " if state.message.error else "") + state.message.text]
                + ([f"hint: {state.message.hint}"] if state.message.hint else []),
            )
        else:
            self.shown.pop("message", None)
        if state.screen is not Screen.MAIN:
            for name in ("list", "details"):
                self.shown.pop(name, None)

    def prompt(self, state: MenuState) -> str:
        if state.screen is Screen.MAIN:
            keys = " ".join(a.key for a, reason in state.actions() if reason is None and len(a.key) == 1)
            return f"[number | Enter=boot | {keys}] > "
        if state.screen is Screen.HISTORY:
            return "[number | Enter=roll back (new env) | D=in place | q=back] > "
        if state.screen is Screen.CONFIRM:
            return f"type {state.pending.word} > " if state.pending and state.pending.word else "[y/N] > "
        return "[Enter=back | j/k] > "


def run_lines(
    session: RecoverySession,
    settings: MenuSettings,
    stdin: TextIO,
    stdout: TextIO,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> MenuResult:
    from bootagent.tui.app import initial_state  # app imports blessed only when a terminal is made

    state = initial_state(session, settings, clock())
    reader = LineReader(stdin)
    printer = LinePrinter(stdout, settings)
    printer.say(settings.title + (" - line mode" if not settings.line_mode else ""))
    pending: list[Effect] = state.initial
    state.initial = []
    countdown_shown: int | None = None
    prompt_due = True
    nobody = False  # the input ended, and no line came since
    while True:
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, Exit):
                return effect.result
            if isinstance(effect, Redraw):
                printer.forget()
            else:
                pending[:0] = _call(session, state, effect, printer, clock)
        printer.show(state)
        left = state.countdown()
        if left is not None:
            if countdown_shown is None:
                printer.write(f"Booting {state.default} in {left} s; Enter stops the countdown: {left}")
            elif left != countdown_shown:
                printer.write(f" {left}")
            countdown_shown = left
            line = reader.readline(min(1.0, max(0.05, (state.deadline or 0) - clock())))
            if line is None or line is EOF:  # the end of the input stops no countdown: nobody is there
                if line is EOF and not nobody:
                    nobody = True
                    LOG.info("end of input during the countdown: it goes on")
                pending += state.tick(clock())
                if state.deadline is None:
                    printer.write("\n")
                continue
            # a line, an empty one too, only stops the countdown: the Enter meant for that boots nothing
            nobody = False
            state.stop_countdown()
            printer.write("\n")
            printer.say("The countdown is stopped.")
            continue
        if prompt_due:
            printer.write(printer.prompt(state))
            prompt_due = False
        line = reader.readline(None)
        if line is EOF:  # nothing is done: a menu nobody answers waits (a countdown would have booted)
            if not nobody:
                nobody = True
                LOG.info("end of input: the menu waits for a line")
                printer.write("\n")
                printer.say("(end of input: nothing was done; the menu waits for a command)")
                prompt_due = True
            continue
        assert isinstance(line, str)
        nobody = False
        prompt_due = True
        for key in line_keys(state, line):
            pending += state.handle(key)
            if any(isinstance(e, Call | Exit) for e in pending):
                break


def _call(
    session: RecoverySession,
    state: MenuState,
    call: Call,
    printer: LinePrinter,
    clock: Callable[[], float],
) -> list[Effect]:
    """Run a session call here (line mode has no screen to keep alive), printing its progress."""
    state.now = clock()
    state.start(call)
    printer.say(busy_lines(state, ASCII, True)[0].lstrip("|/-\\ "))

    def progress(message: str) -> None:
        state.report(message)
        printer.say(f"  {message}")

    try:
        outcome: object = call.run(session, progress)
    except Exception as exc:
        if not hasattr(exc, "hint"):
            LOG.error("menu call %r failed", call.label, exc_info=exc)
        outcome = exc
    state.now = clock()
    return state.finish(call, outcome)
