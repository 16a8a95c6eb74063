"""The full-screen menu: a thin blessed loop around the state machine (state.py) and the renderer.

Works with Debian's blessed 1.19 (curses underneath) and PyPI's 1.5x (pure Python), on TERM=vt100, vt220,
linux and xterm:
- only the basic capabilities are used (cup, el, ed, sgr0, rev, bold, setaf, civis/cnorm) and curses'
  padding (`$<50>`, which 1.19 prints literally) is stripped from them;
- 1.5x's terminal queries (XTGETTCAP, XTVERSION: seconds of waiting on a console that never answers) are
  turned off before they happen;
- keys come through `inkey(timeout, esc_delay=...)`, which joins ESC sequences split across reads
  (CSI and SS3 arrows); every action also has a plain letter, for consoles where arrows never arrive;
- any bytes at all may arrive (line noise, a parity mismatch, C1 controls, NUL, XOFF): the keyboard decodes
  with errors="replace" (`Keyboard`), and what is no text is a key that stops the countdown and does nothing;
- a terminal that hangs up or reaches the end of its input is "nobody there": the countdown goes on and
  boots the default when it ends, the loop sleeps between looks (no busy loop), and a terminal that comes
  back is used again; writes that fail are dropped (output.py);
- only the cells that changed are rewritten (painter.py: a countdown rewrites a number a second, a move
  the marker, two names and the details); Ctrl-L repaints all;
- on a serial console a frame is drawn only once the line has carried the one before (at the speed the
  kernel has for it), and keys typed ahead are all handled before the next frame: holding a key down on
  a 9600-baud line ends on the right frame within a frame's time of letting go.

Session calls run in a worker thread while the loop keeps drawing a spinner, the seconds and the latest
Progress message; nothing but this loop writes to the screen (log records go to the message line).
"""

from __future__ import annotations

import codecs
import contextlib
import inspect
import logging
import os
import queue
import re
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bootagent.boot.session import MenuExit, MenuResult, RecoverySession
from bootagent.reset.mode import ResetMode
from bootagent.reset.password import parse_hash
from bootagent.tui.painter import Painter
from bootagent.tui.render import Glyphs, Size, Style, list_height, render
from bootagent.tui.settings import DEFAULT_COLS, DEFAULT_ROWS, MenuSettings
from bootagent.tui.state import (
    BACKSPACE,
    CTRL_L,
    DOWN,
    END,
    ENTER,
    ESC,
    HOME,
    INVALID,
    LEFT,
    REPLACEMENT,
    RIGHT,
    TAB,
    UNKNOWN,
    UP,
    Call,
    Effect,
    Exit,
    MenuState,
    Message,
    Redraw,
    Screen,
    guarded,
    reset_plan_call,
)

__all__ = ["KeyReader", "Keyboard", "MenuSettings", "make_terminal", "normalize_key", "run_menu"]

LOG = logging.getLogger(__name__)

QUERY_TIMEOUT = "0.3"  # seconds, for any terminal query blessed 1.5x still makes
IDLE_POLL = 1.0  # seconds between looks at the clock and the size when nothing moves
BUSY_POLL = 0.1
COUNTDOWN_POLL = 0.25
BUSY_GRACE = 0.15  # a call that ends this fast never shows the busy screen
GONE_POLL = 0.25  # seconds, at least, between looks at a keyboard that hung up (or reached its end)
TYPEAHEAD = 256  # keys handled at most before a frame is drawn, when they are already waiting
TYPEAHEAD_SECONDS = 0.5
MAX_FAILURES = 5  # consecutive internal errors of the loop before giving up (launch falls back to lines)

_PADDING = re.compile(r"\$<[0-9.]+[*/]*>")


def password_check(text: str) -> Callable[[str], bool] | None:
    """The check of the configured password; a hash that does not parse guards with one nobody knows."""
    if not text:
        return None
    try:
        return parse_hash(text).matches
    except ValueError:
        LOG.error("protection.password_pbkdf2 is not a valid hash: the protected actions are locked")
        return lambda _typed: False


def initial_state(session: RecoverySession, settings: MenuSettings, now: float) -> MenuState:
    """The menu's state with the inventory read; a failure to read it is shown, never raised."""
    try:
        inventory = session.inventory()
        default = session.default_environment()
    except Exception as exc:
        LOG.exception("reading the boot environments failed")
        state = MenuState(None, None, allow_shell=settings.allow_shell, now=now, title=settings.title)
        hint = getattr(exc, "hint", None) or "use the shell, or reboot"
        state.message = Message(f"cannot read the boot environments: {exc}", hint, error=True)
        return state
    state = MenuState(
        inventory,
        default,
        allow_shell=settings.allow_shell,
        timeout=0 if settings.start_reset else settings.timeout,
        now=now,
        title=settings.title,
        password=password_check(settings.password_pbkdf2),
    )
    if settings.start_reset:
        mode = ResetMode(settings.start_reset)
        state.initial = guarded(state, f"the factory reset ({mode.value})", [reset_plan_call(mode)])
        return state
    if settings.notice:
        state.message = Message(settings.notice, settings.notice_hint or None, error=True)
    elif settings.info:
        state.message = Message(settings.info)
    elif default is None:
        state.message = Message("there is no default boot environment: choose one")
    return state


# --- the terminal --------------------------------------------------------------------------------------
def make_terminal(settings: MenuSettings, stream: Any = None) -> Any:
    """A blessed Terminal that never waits for answers from the console (PyPI blessed 1.5x asks the
    terminal for its capabilities and version; a serial console never answers)."""
    os.environ.setdefault("BLESSED_QUERY_TIMEOUT_SECONDS", QUERY_TIMEOUT)  # read when blessed is imported
    os.environ.setdefault("TERM_PROGRAM", "bootagent")  # 1.5x: no XTVERSION query for the program name
    import blessed

    kwargs: dict[str, Any] = {}
    with contextlib.suppress(TypeError, ValueError, ImportError, AttributeError):
        if "_xtgettcap_data" in inspect.signature(blessed.Terminal.__init__).parameters:
            import importlib

            response = importlib.import_module("blessed.keyboard").TermcapResponse
            kwargs["_xtgettcap_data"] = response(supported=False)
    return blessed.Terminal(kind=settings.term or None, stream=stream, **kwargs)


def cap(term: Any, name: str, *args: int) -> str:
    """A capability without curses padding (`$<5>`): blessed 1.19 hands it over literally."""
    try:
        value = getattr(term, name)
        text = value(*args) if args else value
    except Exception:  # an unknown capability, or a formatting problem: do without
        return ""
    return _PADDING.sub("", str(text))


def addressable(term: Any) -> bool:
    return bool(cap(term, "move_yx", 1, 1)) and bool(getattr(term, "is_a_tty", False))


def terminal_size(term: Any, settings: MenuSettings) -> Size:
    """The settings' rows/cols win; else what the terminal says; a serial line says 0x0: 80x24."""
    try:
        rows, cols = int(term.height or 0), int(term.width or 0)
    except Exception:
        rows = cols = 0
    return Size(
        settings.rows or (rows if rows > 0 else DEFAULT_ROWS),
        settings.cols or (cols if cols > 0 else DEFAULT_COLS),
    )


def normalize_key(key: Any) -> str:
    """A blessed Keystroke (either version) as the state machine's key: a printable character or a name."""
    text = str(key)
    if not text:
        return ""
    controls = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE, "\x0c": CTRL_L, "\t": TAB}
    if text in controls:
        return controls[text]
    if text == "\x1b":
        return ESC
    if REPLACEMENT in text:
        return INVALID  # bytes that were no text (the decoder replaced them)
    name = getattr(key, "name", None)
    if getattr(key, "is_sequence", False) and name:
        if name in ("KEY_DELETE", "KEY_DC"):
            return BACKSPACE
        return str(name) if str(name) != "KEY_CTRL_L" else CTRL_L
    if len(text) == 1 and text.isprintable():
        return text
    return UNKNOWN  # a control character or an unknown sequence: stops the countdown, nothing else


class Keyboard:
    """blessed's keyboard made to survive the line it runs on, for both blessed 1.19 and 1.5x.

    Bytes that are no text: both versions decode keys one byte at a time, in `getch()`, with one incremental
    decoder made in the constructor (`Terminal._keyboard_decoder`, strict), so one byte of line noise raised
    UnicodeDecodeError out of `inkey()`. The codecs API lets a decoder's error handling be changed after it
    was made (its `errors` attribute): set to "replace", such bytes arrive as U+FFFD, a key like another
    (normalize_key makes it INVALID). `pending()` and `flush()` do the same for the start of a character
    whose end never comes.

    The end of the input (a hang-up: reads return 0 bytes, and select() says "readable" for ever): 1.19's
    `inkey()` then loops on select and read until its timeout, a busy loop; 1.5x raises EOFError, and again
    at every later call. Both versions read keys through two methods blessed documents as the ones to
    override for other input streams, `kbhit()` and `getch()`; this replaces them on the terminal: `getch()`
    reads one byte as both versions do and notes a 0-byte read (or a read error) as `gone`, and `kbhit()`
    says "no key" while the keyboard is gone, so `inkey()` returns "" at once. KeyReader sleeps while it is
    gone, and looks again now and then (`look_again`): a terminal that comes back is used again."""

    def __init__(self, term: Any) -> None:
        fd = getattr(term, "_keyboard_fd", None)  # None: stdin is no terminal (blessed reads no keys)
        self.fd: int | None = fd if isinstance(fd, int) else None
        decoder = getattr(term, "_keyboard_decoder", None)
        self.decoder: codecs.IncrementalDecoder | None = (
            decoder if isinstance(decoder, codecs.IncrementalDecoder) else None
        )
        if self.decoder is not None:
            self.decoder.errors = "replace"
        self.gone = self.fd is None
        self.lost = False  # gone since the last byte read (logged once)
        self._kbhit: Callable[..., Any] = term.kbhit
        term.kbhit = self.kbhit
        term.getch = self.getch

    def kbhit(self, timeout: float | None = None) -> bool:
        return False if self.gone else bool(self._kbhit(timeout=timeout))

    def getch(self, decode_latin1: bool = False) -> str:
        """One byte, decoded ('' while a character is incomplete); never raises."""
        if self.fd is None or self.gone:
            return ""
        try:
            byte = os.read(self.fd, 1)
        except BlockingIOError:
            return ""
        except OSError as exc:
            self.lose(str(exc))
            return ""
        if not byte:
            self.lose("end of input")
            return ""
        if self.lost:
            self.lost = False
            LOG.warning("the terminal is back")
        if decode_latin1:  # 1.5x: the coordinates of a legacy mouse report are single bytes
            return chr(byte[0])
        return self.decoder.decode(byte, final=False) if self.decoder else byte.decode("latin-1")

    def lose(self, why: str) -> None:
        self.gone = True
        if not self.lost:
            self.lost = True
            LOG.warning(
                "the terminal hung up or its input ended (%s): nobody is there, the menu goes on "
                "(a countdown too) and looks again every %.2g s or so",
                why,
                GONE_POLL,
            )

    def look_again(self) -> None:
        """Read the keyboard again (after a pause): if it is still gone, the next read says so at once."""
        self.gone = self.fd is None

    def pending(self) -> bool:
        """Bytes of a character that has not ended yet wait in the decoder."""
        if self.decoder is None:
            return False
        return bool(self.decoder.getstate()[0])

    def flush(self) -> str:
        """The waiting bytes as U+FFFD: their character never ended (line noise)."""
        if self.decoder is None:
            return ""
        text = self.decoder.decode(b"", final=True)
        self.decoder.reset()
        return str(text)


SS3_KEYS = {"A": UP, "B": DOWN, "C": RIGHT, "D": LEFT, "H": HOME, "F": END}


class KeyReader:
    """Keys from `inkey`, with SS3 arrows (ESC O A) joined on every TERM: blessed maps them only where the
    terminfo entry says so (vt100), and a serial console in application-cursor mode sends them anyway.
    1.19 hands over ESC, 'O', 'A'; 1.5x hands over ESC-O (Alt-Shift-O), 'A'."""

    def __init__(
        self,
        inkey: Callable[..., Any],
        esc_delay: float,
        keyboard: Keyboard | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inkey = inkey
        self.esc_delay = esc_delay
        self.keyboard = keyboard
        self.sleep = sleep
        self.back: list[str] = []

    def _raw(self, timeout: float) -> Any:
        try:
            key = self.inkey(timeout=timeout, esc_delay=self.esc_delay)
        except (EOFError, OSError) as exc:  # a blessed that says "end of input" in its own way after all
            if self.keyboard is None:
                raise
            self.keyboard.lose(str(exc) or type(exc).__name__)
            return ""
        if key:
            LOG.debug("key %r (%s)", str(key), getattr(key, "name", None))
        return key

    def read(self, timeout: float) -> str:
        """The next key within `timeout` seconds, or "". While the keyboard is gone this sleeps (at least
        GONE_POLL) and looks once."""
        if self.back:
            return self.back.pop(0)
        keyboard = self.keyboard
        if keyboard is not None and keyboard.gone:
            self.sleep(max(timeout, GONE_POLL))
            keyboard.look_again()
            timeout = 0.0
        key = self._raw(timeout)
        if not str(key) and keyboard is not None and keyboard.pending():
            key = self._raw(self.esc_delay)  # the rest of the character may be on its way
            if not str(key) and keyboard.pending():
                keyboard.flush()
                return INVALID
        text = str(key)
        if text == "\x1b":
            follow = self._raw(self.esc_delay)
            if str(follow) != "O":
                self.back += [k for k in (normalize_key(follow),) if k]
                return ESC
            text = "\x1bO"
        if text == "\x1bO":
            final = self._raw(self.esc_delay)
            if str(final) in SS3_KEYS:
                return SS3_KEYS[str(final)]
            self.back += [k for k in (normalize_key(final),) if k]
            return UNKNOWN  # Alt-O, or a sequence cut short
        return normalize_key(key)


def painter_for(term: Any, settings: MenuSettings, clock: Callable[[], float] = time.monotonic) -> Painter:
    """The painter with the styles this terminal and these settings have."""
    reverse, bold = cap(term, "reverse"), cap(term, "bold")
    styles = {
        Style.PLAIN: "",
        Style.SELECTED: reverse,
        Style.STATUS: reverse,
        Style.HEADER: bold,
        Style.TITLE: reverse + bold,
        Style.ERROR: bold,
    }
    if settings.color:
        styles[Style.TITLE] = cap(term, "white_on_blue") + bold or styles[Style.TITLE]
        styles[Style.ERROR] = cap(term, "bold_red") or bold
    return Painter(term, cap, styles, serial=settings.serial, clock=clock)


class _ToMessages(logging.Handler):
    """While the menu is up, log records (from any thread) go into a queue the loop shows."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put(record)


@contextlib.contextmanager
def screen_logging() -> Iterator[_ToMessages]:
    """Mute the handlers that write to the console (they would scribble over the menu) and collect the
    warnings for the message line instead."""
    root = logging.getLogger()
    muted: list[tuple[logging.Handler, int]] = []
    consoles = {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}
    for handler in root.handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and (
            stream in consoles or getattr(stream, "isatty", lambda: False)()
        ):
            muted.append((handler, handler.level))
            handler.setLevel(logging.CRITICAL + 1)
    collector = _ToMessages()
    root.addHandler(collector)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        for handler, level in muted:
            handler.setLevel(level)


# --- the loop ------------------------------------------------------------------------------------------
class _Worker:
    """Runs one session call in a thread; the outcome is the result or the exception."""

    def __init__(self, session: RecoverySession, call: Call) -> None:
        self.progress: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.outcome: object = None
        self.thread = threading.Thread(target=self._run, args=(session, call), name="menu-call", daemon=True)

    def _run(self, session: RecoverySession, call: Call) -> None:
        try:
            self.outcome = call.run(session, self.progress.put)
        except BaseException as exc:  # shown by the menu; the menu never dies of it
            if not isinstance(exc, Exception):
                LOG.error("menu call %r stopped: %r", call.label, exc)
            elif not hasattr(exc, "hint"):
                LOG.error("menu call %r failed", call.label, exc_info=exc)
            self.outcome = exc

    def start(self) -> None:
        self.thread.start()


def run_menu(
    session: RecoverySession,
    settings: MenuSettings,
    *,
    term: Any | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> MenuResult:
    """The interactive menu on `term` (default: a Terminal on stdin/stdout). Returns what was chosen.

    A terminal that cannot address the cursor gets the numbered line mode instead."""
    if term is None:
        term = make_terminal(settings)
    if settings.line_mode or not addressable(term):
        from bootagent.tui.lines import run_lines

        LOG.info("terminal %r cannot address the cursor: line mode", settings.term)
        return run_lines(session, settings, sys.stdin, term.stream)
    loop = _Loop(session, settings, term, clock)
    # raw, not cbreak: Ctrl-C, Ctrl-Z and Ctrl-backslash are keys here, not signals that end the agent
    with screen_logging() as logs, raw_mode(term):
        loop.logs = logs
        try:
            return loop.run()
        finally:
            loop.close()


@contextlib.contextmanager
def raw_mode(term: Any) -> Iterator[None]:
    """`term.raw()`, except that a terminal gone by the end (a hang-up: tcsetattr fails with EIO) does not
    turn the menu's result into an exception: the boot goes on without the terminal's old mode."""
    mode = term.raw()
    mode.__enter__()
    try:
        yield
    finally:
        try:
            mode.__exit__(None, None, None)
        except (OSError, termios.error) as exc:
            LOG.warning("the terminal's mode could not be restored: %s", exc)


class _Loop:
    def __init__(
        self, session: RecoverySession, settings: MenuSettings, term: Any, clock: Callable[[], float]
    ):
        self.session = session
        self.settings = settings
        self.term = term
        self.clock = clock
        self.glyphs = Glyphs.for_settings(settings.ascii)
        self.painter = painter_for(term, settings, clock)
        self.state = initial_state(session, settings, clock())
        self.logs: _ToMessages | None = None
        self.failures = 0
        self.frames = 0
        self.first_frame_at: float | None = None
        self.keyboard = Keyboard(term)
        self.keys = KeyReader(term.inkey, settings.esc_delay, self.keyboard)

    def close(self) -> None:
        term = self.term
        self.painter.output.write(
            cap(term, "normal") + cap(term, "home") + cap(term, "clear") + cap(term, "normal_cursor")
        )

    def draw(self) -> None:
        size = terminal_size(self.term, self.settings)
        self.state.page = list_height(size)
        self.state.width = size.cols
        self.state.now = self.clock()
        frame = render(self.state, size, self.glyphs, ascii_only=self.settings.ascii)
        self.painter.paint(frame, size)
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = self.clock()
            inventory = self.state.inventory
            LOG.info("menu drawn (%d boot environments)", len(inventory.environments) if inventory else 0)

    def read_key(self, timeout: float) -> str:
        return self.keys.read(timeout)

    def typed_ahead(self, pending: list[Effect]) -> list[Effect]:
        """The keys already waiting, handled before the next frame is drawn: a held-down key or a burst of
        keys on a slow line ends in one frame, not in a frame per key. Stops at the first key that asks
        for more than a new frame (a call, an exit), and after TYPEAHEAD keys or seconds."""
        out: list[Effect] = []
        until = self.clock() + TYPEAHEAD_SECONDS
        for _ in range(TYPEAHEAD):
            if pending or out or self.keyboard.gone or self.clock() > until:
                break
            key = self.read_key(0.0)
            if not key:
                break
            out += self.state.handle(key)
        return out

    def poll_interval(self) -> float:
        if self.state.busy is not None:
            return BUSY_POLL
        if self.state.deadline is not None:
            return COUNTDOWN_POLL
        return IDLE_POLL

    def drain_logs(self) -> None:
        if self.logs is None:
            return
        while not self.logs.records.empty():
            record = self.logs.records.get()
            self.state.message = Message(record.getMessage(), error=record.levelno >= logging.ERROR)

    def run(self) -> MenuResult:
        self.painter.output.write(cap(self.term, "hide_cursor"))
        pending: list[Effect] = self.state.initial
        self.state.initial = []
        while True:
            try:
                while pending:
                    effect = pending.pop(0)
                    if isinstance(effect, Exit):
                        return effect.result
                    if isinstance(effect, Redraw):
                        self.painter.invalidate()
                    else:
                        pending[:0] = self.call(effect)
                self.drain_logs()
                behind = self.painter.pace.behind()
                if behind <= 0:
                    self.draw()
                key = self.read_key(min(behind, self.poll_interval()) if behind > 0 else self.poll_interval())
                pending += self.state.tick(self.clock())
                if key:
                    pending += self.state.handle(key)
                    pending += self.typed_ahead(pending)
                self.failures = 0
            except Exception as exc:  # a bug in the menu: show it, keep going (the boot depends on us)
                LOG.exception("the menu loop failed")
                self.failures += 1
                pending = []
                if self.failures >= MAX_FAILURES:
                    raise
                self.state.busy = None
                self.state.screen = Screen.MAIN
                self.state.message = Message(
                    f"internal error: {type(exc).__name__}: {exc}", "this is a bug; see dmesg", error=True
                )
                self.painter.invalidate()

    def call(self, call: Call) -> list[Effect]:
        """Run a session call in a worker thread, drawing progress until it ends."""
        self.state.now = self.clock()
        self.state.start(call)
        worker = _Worker(self.session, call)
        worker.start()
        worker.thread.join(BUSY_GRACE)
        while worker.thread.is_alive():
            while not worker.progress.empty():
                self.state.report(worker.progress.get())
            self.drain_logs()
            if self.painter.pace.behind() <= 0:
                self.draw()
            key = self.read_key(BUSY_POLL)
            if key == CTRL_L:
                self.painter.invalidate()
            worker.thread.join(0.0)
        while not worker.progress.empty():
            self.state.report(worker.progress.get())
        self.drain_logs()  # before finish: the outcome's message is the one to show
        self.state.now = self.clock()
        return self.state.finish(call, worker.outcome)


def exit_name(result: MenuResult) -> str:
    if result.exit is MenuExit.BOOT and result.decision is not None:
        return f"boot {result.decision.environment}"
    return result.exit.value
