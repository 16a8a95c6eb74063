"""How the menu looks and behaves: one frozen value built at the edge from the config and the console."""

from __future__ import annotations

from dataclasses import dataclass

from bootagent.config import Console, Tristate

# Terminal types that cannot address the cursor: the menu uses numbered lines on them.
LINE_MODE_TERMS = frozenset({"", "dumb", "unknown", "cons25-dumb", "emacs"})
# Terminal types that are hardware (or emulate hardware) without Unicode line drawing or colour.
PLAIN_TERMS = ("vt100", "vt102", "vt220", "vt52", "ansi")

DEFAULT_ROWS = 24
DEFAULT_COLS = 80


@dataclass(frozen=True)
class MenuSettings:
    timeout: int = 10  # seconds of countdown to the default choice; 0 = wait forever
    ascii: bool = True  # ASCII glyphs only
    color: bool = False
    rows: int | None = None  # overrides the terminal's size (serial lines report 0x0)
    cols: int | None = None
    allow_shell: bool = True
    serial: bool = False
    title: str = "bootagent boot menu"
    term: str = "vt220"  # the TERM value
    esc_delay: float = 0.35  # seconds to wait for the rest of an ESC sequence (slow serial links split them)
    notice: str = ""  # shown when the menu opens (e.g. why unattended recovery stopped here)
    notice_hint: str = ""
    info: str = ""  # a line of information shown when the menu opens (the boot counter, a recovery)
    start_reset: str = ""  # a factory reset mode chosen in GRUB: the menu opens on its confirmation
    password_pbkdf2: str = ""  # protection: the resets and the shell ask for this password

    @property
    def line_mode(self) -> bool:
        """The terminal cannot address the cursor: use the numbered line mode."""
        return self.term.strip().lower() in LINE_MODE_TERMS

    @classmethod
    def from_console(
        cls,
        console: Console,
        *,
        serial: bool,
        term: str | None,
        timeout: int | None = None,
        rows: int | None = None,
        cols: int | None = None,
        encoding: str | None = "utf-8",
        title: str = "bootagent boot menu",
    ) -> MenuSettings:
        """From the config's console section and the facts about this console.

        `timeout`, `rows`, `cols` come from the kernel command line and win over the config. With `auto`,
        serial consoles and VT-style terminals get ASCII without colour; the Linux console and xterm get
        line drawing (if the output encoding is UTF-8) and colour."""
        kind = (term or "").strip().lower()
        plain = serial or kind.startswith(PLAIN_TERMS) or kind in LINE_MODE_TERMS
        utf8 = (encoding or "").lower().replace("-", "").replace("_", "") in {"utf8", "utf8mb4"}
        ascii_only = _decide(console.ascii, plain or not utf8)
        if not utf8:
            ascii_only = True  # whatever the config says: the output cannot carry anything else
        return cls(
            timeout=console.menu_timeout if timeout is None else max(0, timeout),
            ascii=ascii_only,
            color=_decide(console.color, not plain),
            rows=rows if rows is not None else console.rows,
            cols=cols if cols is not None else console.columns,
            allow_shell=console.allow_shell,
            serial=serial,
            title=title,
            term=kind,
            esc_delay=0.6 if serial else 0.35,
        )


def _decide(value: Tristate, auto: bool) -> bool:
    if value is Tristate.AUTO:
        return auto
    return value is Tristate.ON
