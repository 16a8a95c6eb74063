"""The menu state as exact lines of text: `render(state, size, glyphs)` gives `rows` lines of exactly `cols`
cells each, with a style per line. No terminal here; styles become escape sequences in app.py (or nothing).

At 80x24 the details pane is below the list; from WIDE_COLS columns on it is beside it. Every glyph has an
ASCII fallback (serial consoles); text from the pool (descriptions) is cleaned of control characters, and of
anything not ASCII in ASCII mode.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bootagent.cli.render import FLAG_LETTERS, human_size, when
from bootagent.environments import Inventory
from bootagent.model import BootEnvironment, Flag, Snapshot
from bootagent.tui.state import NAVIGATION_HELP, MenuState, Row, Screen

WIDE_COLS = 120  # from here on the details pane is beside the list
SIDE_WIDTH = 44  # the details pane beside the list, with its border
MESSAGE_ROWS = 3


class Style(StrEnum):
    PLAIN = "plain"
    TITLE = "title"
    HEADER = "header"
    SELECTED = "selected"
    ERROR = "error"
    STATUS = "status"


@dataclass(frozen=True)
class Glyphs:
    collapsed: str
    expanded: str
    branch: str
    last_branch: str
    hline: str
    vline: str
    cursor: str
    ellipsis: str
    spinner: str

    @classmethod
    def for_settings(cls, ascii_only: bool) -> Glyphs:
        return ASCII if ascii_only else UNICODE


ASCII = Glyphs("+", "-", "|-", "`-", "-", "|", ">", "~", "|/-\\")
UNICODE = Glyphs("▸", "▾", "├─", "└─", "─", "│", "▶", "…", "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


@dataclass(frozen=True)
class Size:
    rows: int
    cols: int


@dataclass(frozen=True)
class Line:
    text: str  # exactly the frame's width in cells
    style: Style = Style.PLAIN


# --- text helpers --------------------------------------------------------------------------------------
def _cells(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def clean(text: str, ascii_only: bool) -> str:
    """One line of printable text: control characters (and, in ASCII mode, anything else) become '?'."""
    out = []
    for ch in text:
        if ch in "\t\n\r":
            out.append(" ")
        elif not ch.isprintable() or (ascii_only and not (" " <= ch <= "~")):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def width_of(text: str) -> int:
    return sum(_cells(ch) for ch in text)


def fit(text: str, width: int, glyphs: Glyphs = ASCII) -> str:
    """Exactly `width` cells: cut (with an ellipsis) or padded with spaces."""
    if width <= 0:
        return ""
    if width_of(text) <= width:
        return text + " " * (width - width_of(text))
    out, used = [], 0
    for ch in text:
        cells = _cells(ch)
        if used + cells > width - 1:
            break
        out.append(ch)
        used += cells
    return "".join(out) + glyphs.ellipsis + " " * (width - 1 - used)


def wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(1, width), break_long_words=True, break_on_hyphens=False) or [""]


# --- the main list -------------------------------------------------------------------------------------
def flags_of(inv: Inventory, env: BootEnvironment) -> str:
    return "".join(FLAG_LETTERS[f] for f in inv.flags(env)) or "-"


FLAG_WORDS = {
    Flag.ACTIVE: "active (default)",
    Flag.NEXT_BOOT: "next boot",
    Flag.RUNNING: "running",
    Flag.LAST_KNOWN_GOOD: "last-known-good",
    Flag.KEEP: "keep",
}


def _columns(width: int) -> tuple[int, bool, bool, int]:
    """(name width, show created, show used, description width) for a list `width` cells wide."""
    fixed = 8 + 1 + 6  # marker, number, tree; flags
    created = width >= 60
    used = width >= 52
    rest = width - fixed - (17 if created else 0) - (8 if used else 0)
    name = max(8, min(20, rest - 12 if rest > 30 else rest))
    desc = max(0, rest - name - 2)
    return name, created, used, desc


def list_header(width: int, glyphs: Glyphs) -> str:
    name, created, used, desc = _columns(width)
    text = "    #   " + fit("environment", name + 1) + fit("flags", 6)
    text += fit("created", 17) if created else ""
    text += f"{'used':>7} " if used else ""
    text += " " + fit("description", desc) if desc else ""
    return fit(text, width, glyphs)


def list_row(state: MenuState, row: Row, number: int, width: int, glyphs: Glyphs, ascii_only: bool) -> str:
    inv = state.inventory
    assert inv is not None
    name_w, created, used, desc_w = _columns(width)
    selected = state.selected() == row
    mark = glyphs.cursor if selected else " "
    if row.snapshot is None:
        env = row.env
        tree = " "
        if env.snapshots:
            tree = glyphs.expanded if env.name in state.expanded else glyphs.collapsed
        name = f"{tree} {env.name}"
        flags = flags_of(inv, env)
        stamp, size, desc = env.created, env.used, env.description
    else:
        snap = row.snapshot
        branch = glyphs.last_branch if row.last else glyphs.branch
        name = f"  {branch} @{snap.name}"
        flags = "K" if snap.keep else ""
        stamp, size, desc = snap.created, snap.used, snap.description
    text = f"{mark} {number:>3}   " + fit(clean(name, ascii_only), name_w, glyphs) + " " + fit(flags, 6)
    text += fit(when(stamp), 17) if created else ""
    text += f"{human_size(size):>7} " if used else ""
    text += " " + fit(clean(desc, ascii_only), desc_w, glyphs) if desc_w else ""
    return fit(text, width, glyphs)


# --- the details pane ----------------------------------------------------------------------------------
def detail_pairs(state: MenuState) -> tuple[str, list[tuple[str, str]], str]:
    """(heading, label/value pairs, description) of the selected row."""
    row = state.selected()
    inv = state.inventory
    if row is None or inv is None:
        return "no boot environments", [], ""
    if row.snapshot is not None:
        return _snapshot_details(row.snapshot)
    env = row.env
    flags = ", ".join(FLAG_WORDS[f] for f in inv.flags(env))
    good = when(env.last_good) if env.last_good else "never marked good"
    lkg = inv.state.last_known_good
    pairs = [
        ("dataset", env.dataset),
        ("created", when(env.created)),
        ("kernel", env.kernel or "unknown"),
        ("used", f"{human_size(env.used)} (refer {human_size(env.referenced)})"),
        ("origin", env.origin or "-"),
        ("last good", good),
        ("snapshots", str(len(env.snapshots))),
        ("made by", env.created_by.value),
    ]
    if env.rolled_back_from:
        pairs.append(("rolled back from", env.rolled_back_from))
    if lkg and lkg != env.name:
        pairs.append(("last-known-good", lkg))
    heading = env.name + (f"  [{flags}]" if flags else "")
    return heading, pairs, env.description


def _snapshot_details(snap: Snapshot) -> tuple[str, list[tuple[str, str]], str]:
    pairs = [
        ("created", when(snap.created)),
        ("used", f"{human_size(snap.used)} (refer {human_size(snap.referenced)})"),
        ("made by", snap.created_by.value),
        ("clones", ", ".join(c.rsplit("/", 1)[-1] for c in snap.clones) or "-"),
    ]
    heading = snap.label + ("  [keep]" if snap.keep else "") + "  (s: boot as a new environment)"
    return heading, pairs, snap.description


def details_lines(state: MenuState, width: int, height: int, glyphs: Glyphs, ascii_only: bool) -> list[str]:
    """The details pane: `height` lines of `width` cells. Narrow panes put two pairs on a line."""
    heading, pairs, desc = detail_pairs(state)
    lines = [clean(heading, ascii_only)]
    cells = [f"{label}: {clean(value, ascii_only)}" for label, value in pairs]
    if width >= 70:
        half = width // 2
        for i in range(0, len(cells), 2):
            left = fit(cells[i], half - 1, glyphs) + " "
            right = cells[i + 1] if i + 1 < len(cells) else ""
            lines.append(left + right)
    else:
        lines.extend(cells)
    if desc:
        lines.extend(wrap("description: " + clean(desc, ascii_only), width))
    if len(lines) > height and height > 0 and desc:
        # keep the description's first line rather than the last pairs
        first_desc = wrap("description: " + clean(desc, ascii_only), width)[0]
        lines = [*lines[: height - 1], first_desc]
    lines = lines[:height] + [""] * max(0, height - len(lines))
    return [fit(line, width, glyphs) for line in lines]


# --- the other screens ---------------------------------------------------------------------------------
def help_lines(state: MenuState) -> list[str]:
    out = ["Keys (single keys work where arrow keys do not arrive, e.g. on a serial line):", ""]
    for action, reason in state.actions():
        name = action.key_name or action.key
        text = f"  {name:<16}{action.help}"
        out.append(text + (f"  [{reason.split(' (')[0]}]" if reason and "disabled" in reason else ""))
    out.append("")
    out.extend(f"  {keys:<16}{what}" for keys, what in NAVIGATION_HELP)
    out.append("")
    legend = "  ".join(f"{letter} {FLAG_WORDS[flag]}" for flag, letter in FLAG_LETTERS.items())
    out.append(f"Flags: {legend}")
    out.append("The countdown boots the default; any key stops it.")
    return out


def journal_lines(state: MenuState, ascii_only: bool) -> list[str]:
    if not state.journal:
        return ["The journal is empty."]
    return [
        clean(
            f"{when(e.time)}  {e.actor.value:<9} {e.action:<22} {e.target:<16} "
            f"{e.outcome.value:<8} {e.detail}",
            ascii_only,
        )
        for e in state.journal
    ]


def history_lines(state: MenuState, width: int, glyphs: Glyphs, ascii_only: bool) -> list[str]:
    out = []
    for i, snap in enumerate(state.history()):
        mark = glyphs.cursor if i == state.history_cursor else " "
        desc = clean(snap.description, ascii_only)
        text = f"{mark} {i + 1:>3}  {snap.label:<30} {when(snap.created):<17} {desc}"
        out.append(fit(clean(text, ascii_only), width, glyphs))
    return out


def history_intro(state: MenuState) -> list[str]:
    env = state.history_env or "?"
    return [
        f"Roll back {env}: pick how many steps back (the earlier states, newest first).",
        f"Enter: a NEW environment from that state becomes the default; {env} is kept.",
        "D: roll back IN PLACE, destroying the newer snapshots (asks you to type ROLLBACK).",
    ]


def confirm_lines(state: MenuState) -> list[str]:
    pending = state.pending
    if pending is None:
        return []
    out = [pending.title, "", *pending.lines]
    if pending.word is not None:
        out += ["", f"> {state.typed}_"]
    return out


def busy_lines(state: MenuState, glyphs: Glyphs, ascii_only: bool) -> list[str]:
    call = state.busy
    if call is None:
        return []
    spin = glyphs.spinner[int(state.now * 4) % len(glyphs.spinner)]
    seconds = int(state.busy_seconds())
    out = [f"{spin} {clean(call.label, ascii_only)}  ({seconds} s)"]
    if state.progress:
        out.append("  " + clean(state.progress, ascii_only))
    out += ["", "Please wait; the menu comes back when this is done."]
    return out


def status_text(state: MenuState) -> str:
    if state.screen is Screen.MAIN:
        left = state.countdown()
        if left is not None and state.default:
            return f"Booting {state.default} in {left} s. Press any key to stop the countdown."
        if state.digits:
            return f"Row {state.digits}  (more digits, or Enter)"
        parts = [
            f"{'Enter' if a.key.startswith('KEY_') else a.key}={a.label}"
            for a, reason in state.actions()
            if a.in_status and reason is None
        ]
        return " ".join(parts)
    return {
        Screen.HELP: "j/k PgUp/PgDn scroll   q back",
        Screen.JOURNAL: "j/k PgUp/PgDn scroll   q back",
        Screen.HISTORY: "1-9 j/k pick   Enter roll back (new env)   D in place (destroys)   q back",
        Screen.CONFIRM: (
            "type the word, then Enter; anything else cancels"
            if state.wants_text()
            else "y yes   any other key: no"
        ),
        Screen.BUSY: "working - please wait",
    }.get(state.screen, "")


def message_lines(state: MenuState, width: int, ascii_only: bool) -> list[tuple[str, bool]]:
    """The message (wrapped, cut to fit) and its hint on the last line."""
    msg = state.message
    if msg is None:
        return []
    hint = wrap("hint: " + clean(msg.hint, ascii_only), width)[:1] if msg.hint else []
    text = wrap(("error: " if msg.error else "") + clean(msg.text, ascii_only), width)
    room = MESSAGE_ROWS - len(hint)
    if len(text) > room:
        text = [*text[: room - 1], fit(" ".join(text[room - 1 :]), width)]
    return [(line, msg.error) for line in [*text, *hint]]


# --- layout --------------------------------------------------------------------------------------------
def details_height(size: Size) -> int:
    if size.cols >= WIDE_COLS:
        return 0  # beside the list
    if size.rows >= 22:
        return 5
    if size.rows >= 16:
        return 3
    return 0


def list_height(size: Size) -> int:
    """Rows of the main list (and of the scrolling screens) at this size."""
    below = details_height(size)
    return max(1, size.rows - 3 - MESSAGE_ROWS - (below + 1 if below else 0))


def body_height(size: Size) -> int:
    return max(1, size.rows - 2 - MESSAGE_ROWS)


def render(state: MenuState, size: Size, glyphs: Glyphs = ASCII, *, ascii_only: bool = True) -> list[Line]:
    rows, cols = max(1, size.rows), max(1, size.cols)
    size = Size(rows, cols)
    title = (
        f"{state.title} - pool {state.inventory.pool.name} {state.inventory.pool.health.value}"
        if (state.inventory)
        else state.title
    )
    if state.inventory is not None and state.inventory.pool.readonly:
        title += " (read-only)"
    out = [Line(fit(" " + clean(title, ascii_only), cols, glyphs), Style.TITLE)]
    if state.screen is Screen.MAIN:
        out += _main(state, size, glyphs, ascii_only)
    else:
        out += _body(state, size, glyphs, ascii_only)
    messages = message_lines(state, cols, ascii_only)
    for i in range(MESSAGE_ROWS):
        text, error = messages[i] if i < len(messages) else ("", False)
        out.append(Line(fit(text, cols, glyphs), Style.ERROR if error else Style.PLAIN))
    out.append(Line(fit(" " + status_text(state), cols, glyphs), Style.STATUS))
    out = out[: rows - 1] + [out[-1]] if len(out) > rows else out
    return [Line(fit(line.text, cols, glyphs), line.style) for line in out]


def _main(state: MenuState, size: Size, glyphs: Glyphs, ascii_only: bool) -> list[Line]:
    wide = size.cols >= WIDE_COLS
    list_w = size.cols - SIDE_WIDTH if wide else size.cols
    height = list_height(size)
    rows = state.rows()
    top = max(0, min(state.list_top, max(0, len(rows) - height)))
    shown: list[Line] = [Line(list_header(list_w, glyphs), Style.HEADER)]
    for i in range(top, top + height):
        if i < len(rows):
            text = list_row(state, rows[i], i + 1, list_w, glyphs, ascii_only)
            shown.append(Line(text, Style.SELECTED if i == state.cursor else Style.PLAIN))
        elif i == 0:
            shown.append(Line(fit("  (no boot environments found)", list_w, glyphs)))
        else:
            shown.append(Line(" " * list_w))
    if wide:
        side = details_lines(state, SIDE_WIDTH - 2, height + 1, glyphs, ascii_only)
        # the selection's reverse video must not run into the pane: the pane is plain text
        return [Line(line.text + " " + glyphs.vline + side[i], line.style) for i, line in enumerate(shown)]
    below = details_height(size)
    if below:
        label = f"{glyphs.hline * 2} details "
        shown.append(Line((label + glyphs.hline * size.cols)[: size.cols]))
        shown += [Line(t) for t in details_lines(state, size.cols, below, glyphs, ascii_only)]
    return shown


def _body(state: MenuState, size: Size, glyphs: Glyphs, ascii_only: bool) -> list[Line]:
    height = body_height(size)
    cols = size.cols
    lines: Sequence[str]
    styles: dict[int, Style] = {}
    if state.screen is Screen.HELP:
        lines = help_lines(state)[state.help_top :]
    elif state.screen is Screen.JOURNAL:
        lines = ["When              Who       Action                 Target           Outcome  Detail"]
        styles[0] = Style.HEADER
        lines += journal_lines(state, ascii_only)[state.journal_top :]
    elif state.screen is Screen.HISTORY:
        intro = history_intro(state)
        entries = history_lines(state, cols, glyphs, ascii_only)
        room = max(1, height - len(intro) - 1)
        top = max(0, min(state.history_top, max(0, len(entries) - room)))
        lines = [*intro, "", *entries[top : top + room]]
        if 0 <= state.history_cursor - top < room:
            styles[len(intro) + 1 + state.history_cursor - top] = Style.SELECTED
    elif state.screen is Screen.CONFIRM:
        lines = ["", *confirm_lines(state)]
    else:
        lines = ["", *busy_lines(state, glyphs, ascii_only)]
    out = []
    for i in range(height):
        text = clean(lines[i], ascii_only) if i < len(lines) else ""
        out.append(Line(fit(" " + text if text else "", cols, glyphs), styles.get(i, Style.PLAIN)))
    return out
