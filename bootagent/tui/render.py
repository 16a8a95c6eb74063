"""The menu state as exact lines of text: `render(state, size, glyphs)` gives `rows` lines of exactly `cols`
cells each, with a style per line. No terminal here; styles become escape sequences in app.py (or nothing).

At 80x24 the details pane is below the list; from WIDE_COLS columns on it is beside it. Every glyph has an
ASCII fallback (serial consoles); text from the pool (descriptions) is cleaned of control characters, and of
anything not ASCII in ASCII mode.

Every screen fits down to 40x10. Names get the width there is before the other columns, and when one must
be cut it is cut in the middle, so that names which differ at their end (timestamps) still differ. On the
screens with text (a confirmation, the history, the busy screen) explanations are wrapped to the width;
when there is not room for all of it the explanation is shortened, never the title, the prompt or the echo
of a typed word.
"""

from __future__ import annotations

import functools
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bootagent.cli.render import FLAG_LETTERS, human_size, when
from bootagent.environments import Inventory
from bootagent.model import BootEnvironment, Flag, Snapshot
from bootagent.tui.state import NAVIGATION_HELP, MenuState, Row, Screen

WIDE_COLS = 120  # from here on the details pane is beside the list
SIDE_WIDTH = 44  # the details pane beside the list, with its border
MESSAGE_ROWS = 3
NAME_WIDTH = 20  # the name column of the list when every name is shorter (wider when one is longer)
MARGIN = 1  # cells left of the text on the screens other than the main one
MIN_HISTORY_ROWS = 3  # rows of the history list kept before its explanation when the screen is small


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
    styled: int | None = None  # the style covers this many cells from the left (None: the whole line)


# --- text helpers --------------------------------------------------------------------------------------
def _cells(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells_of(text: str) -> list[str]:
    """`text` cell by cell: a wide character fills its cell and an empty one after it, a combining
    character joins the cell before it."""
    if text.isascii():
        return list(text)
    out: list[str] = []
    for ch in text:
        cells = _cells(ch)
        if cells == 0 and out:
            out[-1] += ch
        elif cells == 2:
            out += [ch, ""]
        else:
            out.append(ch)
    return out


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
    if text.isascii():  # the usual case, and a frame has thousands of these
        return len(text)
    return sum(_cells(ch) for ch in text)


def _head(text: str, width: int) -> str:
    """The start of `text` that fits in `width` cells."""
    out, used = [], 0
    for ch in text:
        cells = _cells(ch)
        if used + cells > width:
            break
        out.append(ch)
        used += cells
    return "".join(out)


def _tail(text: str, width: int) -> str:
    """The end of `text` that fits in `width` cells."""
    return _head(text[::-1], width)[::-1]


def fit(text: str, width: int, glyphs: Glyphs = ASCII) -> str:
    """Exactly `width` cells: cut (with an ellipsis) or padded with spaces. Trailing spaces are padding,
    not text: they are dropped before anything is cut."""
    if width <= 0:
        return ""
    if width_of(text) > width:
        text = text.rstrip(" ")
    used = width_of(text)
    if used <= width:
        return text + " " * (width - used)
    head = _head(text, width - 1)
    return head + glyphs.ellipsis + " " * (width - 1 - width_of(head))


def cut_middle(text: str, width: int, glyphs: Glyphs = ASCII, head: int | None = None) -> str:
    """`text` in at most `width` cells: cut in the middle (an ellipsis there) when it is longer, keeping
    `head` cells of the start (default a third) and as much of the end as fits: the end is where names
    made by a program differ (auto-20261201-101010, auto-20261201-101011)."""
    if width_of(text) <= width:
        return text
    if width <= 1:
        return glyphs.ellipsis if width == 1 else ""
    room = width - 1
    start = _head(text, room // 3 if head is None else max(0, min(head, room)))
    return start + glyphs.ellipsis + _tail(text, room - width_of(start))


def shorten_names(names: Iterable[str], width: int, glyphs: Glyphs = ASCII) -> dict[str, str]:
    """Each name as shown in `width` cells: cut in the middle where it is longer, at the same place for
    all of them, and at a place that keeps different names different (when some place does)."""
    return dict(_shorten(tuple(sorted(set(names))), width, glyphs))


@functools.lru_cache(maxsize=64)
def _shorten(names: tuple[str, ...], width: int, glyphs: Glyphs) -> tuple[tuple[str, str], ...]:
    long = [n for n in names if width_of(n) > width]
    if not long:
        return tuple((n, n) for n in names)
    room = max(0, width - 1)
    preferred = room // 3
    for head in sorted(range(room + 1), key=lambda h: (abs(h - preferred), h)):
        cut = {n: cut_middle(n, width, glyphs, head) for n in long}
        shown = [cut.get(n, n) for n in names]
        if len(set(shown)) == len(names):
            return tuple(zip(names, shown, strict=True))
    return tuple((n, cut_middle(n, width, glyphs)) for n in names)


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        max(1, width),
        subsequent_indent=indent if len(indent) < width else "",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [""]


def wrap_all(paragraphs: Iterable[str], width: int) -> list[str]:
    return [line for text in paragraphs for line in wrap(text, width)]


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


@dataclass(frozen=True)
class ListLayout:
    """The columns of the main list at one width. The names come first: their column is as wide as the
    longest name needs (at least NAME_WIDTH when there is room), the size and then the creation time give
    way to it on narrow screens, and the description gets what is left. `names` maps each row's label to
    its name as shown (cut in the middle when even the whole width is too narrow)."""

    name: int
    created: bool
    used: bool
    desc: int
    names: Mapping[str, str] = field(default_factory=dict)


def _columns(width: int, need: int = 0) -> tuple[int, bool, bool, int]:
    """(name width, show created, show used, description width) for a list `width` cells wide whose
    longest name (with its tree glyphs) needs `need` cells."""
    fixed = 8 + 1 + 6  # marker, number, tree; flags
    created = width >= 60
    used = width >= 52

    def rest() -> int:
        return width - fixed - (17 if created else 0) - (8 if used else 0)

    if need > rest():
        used = False
    if need > rest():
        created = False
    name = max(1, min(max(need, NAME_WIDTH), rest()))
    desc = rest() - name - 2
    return name, created, used, desc if desc >= 6 else 0


def _tree(state: MenuState, row: Row, glyphs: Glyphs) -> str:
    """What stands before a row's name: the expand glyph of an environment, the branch of a snapshot."""
    if row.snapshot is not None:
        return f"  {glyphs.last_branch if row.last else glyphs.branch} "
    if not row.env.snapshots:
        return "  "
    return f"{glyphs.expanded if row.env.name in state.expanded else glyphs.collapsed} "


def _name(row: Row, ascii_only: bool) -> str:
    return clean(row.env.name if row.snapshot is None else "@" + row.snapshot.name, ascii_only)


_LAYOUTS: list[tuple[object, int, Glyphs, bool, ListLayout]] = []  # the last one made (one menu at a time)


def list_layout(state: MenuState, width: int, glyphs: Glyphs = ASCII, ascii_only: bool = True) -> ListLayout:
    """The columns for `state`'s names. Every environment and snapshot counts, shown or not, so the columns
    do not move when a tree is opened. Made once per inventory and width: with thousands of snapshots it is
    most of a frame's work."""
    inventory = state.inventory
    for made, w, g, a, layout in _LAYOUTS:
        if made is inventory and inventory is not None and (w, g, a) == (width, glyphs, ascii_only):
            return layout
    layout = _list_layout(state, width, glyphs, ascii_only)
    _LAYOUTS[:] = [(inventory, width, glyphs, ascii_only, layout)]
    return layout


def _list_layout(state: MenuState, width: int, glyphs: Glyphs, ascii_only: bool) -> ListLayout:
    envs = state.inventory.environments if state.inventory is not None else ()
    env_names = [clean(e.name, ascii_only) for e in envs]
    snap_names = {s.label: "@" + clean(s.name, ascii_only) for e in envs for s in e.snapshots}
    env_tree = 2
    snap_tree = 3 + max(width_of(glyphs.branch), width_of(glyphs.last_branch))
    need = max(
        [env_tree + width_of(n) for n in env_names] + [snap_tree + width_of(n) for n in snap_names.values()],
        default=0,
    )
    name, created, used, desc = _columns(width, need)
    envs_shown = shorten_names(env_names, name - env_tree, glyphs)
    snaps_shown = shorten_names(snap_names.values(), name - snap_tree, glyphs)
    names = {clean(e.name, ascii_only): envs_shown[clean(e.name, ascii_only)] for e in envs}
    names |= {label: snaps_shown[shown] for label, shown in snap_names.items()}
    return ListLayout(name, created, used, desc, names)


def list_header(width: int, glyphs: Glyphs, layout: ListLayout | None = None) -> str:
    if layout is None:
        name, created, used, desc = _columns(width)
    else:
        name, created, used, desc = layout.name, layout.created, layout.used, layout.desc
    text = "    #   " + fit("environment", name + 1) + fit("flags", 6)
    text += fit("created", 17) if created else ""
    text += f"{'used':>7} " if used else ""
    text += " " + fit("description", desc) if desc else ""
    return fit(text, width, glyphs)


def list_row(
    state: MenuState,
    row: Row,
    number: int,
    width: int,
    glyphs: Glyphs,
    ascii_only: bool,
    layout: ListLayout | None = None,
) -> str:
    inv = state.inventory
    assert inv is not None
    if layout is None:
        layout = list_layout(state, width, glyphs, ascii_only)
    selected = state.selected() == row
    mark = glyphs.cursor if selected else " "
    if row.snapshot is None:
        env = row.env
        flags = flags_of(inv, env)
        stamp, size, desc = env.created, env.used, env.description
        label = clean(env.name, ascii_only)
    else:
        snap = row.snapshot
        flags = "K" if snap.keep else ""
        stamp, size, desc = snap.created, snap.used, snap.description
        label = snap.label
    half = row.env.missing_half or (row.snapshot.missing_half if row.snapshot is not None else None)
    if half:  # half of a pair (bootagent.pairs): the reason takes the description's place
        flags, desc = flags.strip("-") + "!", f"NOT BOOTABLE: {half}"
    name = _tree(state, row, glyphs) + layout.names.get(label, _name(row, ascii_only))
    text = f"{mark} {number:>3}   " + fit(name, layout.name, glyphs) + " " + fit(flags, 6)
    text += fit(when(stamp), 17) if layout.created else ""
    text += f"{human_size(size):>7} " if layout.used else ""
    text += " " + fit(clean(desc, ascii_only), layout.desc, glyphs) if layout.desc else ""
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
    if env.boot_dataset:
        pairs.insert(1, ("/boot half", env.boot_dataset))
    if env.rolled_back_from:
        pairs.append(("rolled back from", env.rolled_back_from))
    if lkg and lkg != env.name:
        pairs.append(("last-known-good", lkg))
    heading = env.name + (f"  [{flags}]" if flags else "")
    return heading, pairs, _with_half(env.missing_half, env.description)


def _with_half(missing_half: str | None, description: str) -> str:
    """A missing half of a pair leads the description, where it is wrapped in full, never cut."""
    if not missing_half:
        return description
    return f"NOT BOOTABLE: {missing_half}" + (f"; {description}" if description else "")


def _snapshot_details(snap: Snapshot) -> tuple[str, list[tuple[str, str]], str]:
    pairs = [
        ("created", when(snap.created)),
        ("used", f"{human_size(snap.used)} (refer {human_size(snap.referenced)})"),
        ("made by", snap.created_by.value),
        ("clones", ", ".join(c.rsplit("/", 1)[-1] for c in snap.clones) or "-"),
    ]
    heading = snap.label + ("  [keep]" if snap.keep else "") + "  (s: boot as a new environment)"
    return heading, pairs, _with_half(snap.missing_half, snap.description)


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
def help_lines(state: MenuState, cols: int | None = None) -> list[str]:
    """The help text; wrapped to a screen `cols` wide (inside its margin) when given."""
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
    if cols is None:
        return out
    width = max(1, cols - MARGIN)
    return [part for line in out for part in wrap(line, width, indent=" " * 18 if line[:2] == "  " else "")]


def journal_lines(state: MenuState, ascii_only: bool) -> list[str]:
    if not state.journal:
        return ["The journal is empty."]
    return [
        clean(
            f"{when(e.time)}  {e.actor.value:<9} {e.action:<22} {e.target:<16} "
            f"{e.outcome.value:<11} {e.detail}",
            ascii_only,
        )
        for e in state.journal
    ]


def history_lines(state: MenuState, width: int, glyphs: Glyphs, ascii_only: bool) -> list[str]:
    """The steps back, each `width` cells: the label as wide as the longest needs (cut in the middle when
    the width is too narrow even for it), the creation time when there is room beside it, then the
    description."""
    history = state.history()
    labels = [clean(s.label, ascii_only) for s in history]
    rest = width - 7  # marker and number
    need = max((width_of(label) for label in labels), default=0)
    stamp = 17 if need + 17 <= rest else 0  # " 2023-11-15 01:13"
    label_w = max(1, min(need, rest - stamp))
    shown = shorten_names(labels, label_w, glyphs)
    desc_w = rest - label_w - stamp - 1
    out = []
    for i, (snap, label) in enumerate(zip(history, labels, strict=True)):
        mark = glyphs.cursor if i == state.history_cursor else " "
        text = f"{mark} {i + 1:>3}  " + fit(shown[label], label_w, glyphs)
        text += " " + fit(when(snap.created), 16) if stamp else ""
        text += " " + fit(clean(snap.description, ascii_only), desc_w, glyphs) if desc_w >= 4 else ""
        out.append(fit(text, width, glyphs))
    return out


def history_intro(state: MenuState) -> list[str]:
    """The history screen's heading (first) and its explanation."""
    env = state.history_env or "?"
    return [
        f"Roll back {env}: how many steps back?",
        f"The earlier states of {env}, newest first.",
        f"Enter: a NEW environment from that state becomes the default; {env} is kept.",
        "D: roll back IN PLACE, destroying the newer snapshots (asks you to type ROLLBACK).",
    ]


def confirm_lines(state: MenuState, width: int | None = None) -> list[str]:
    """The question as lines (for the line mode): title, explanation, prompt; wrapped to `width`."""
    pending = state.pending
    if pending is None:
        return []
    if width is None:
        return [pending.title, "", *pending.lines, "", pending.prompt]
    return [pending.title, "", *wrap_all(pending.lines, width), "", *wrap(pending.prompt, width)]


def typed_echo(state: MenuState, width: int, glyphs: Glyphs, ascii_only: bool) -> str:
    """What was typed of the word, with a cursor; its end when it is longer than the width."""
    secret = state.pending is not None and state.pending.check is not None
    echo = ("*" * len(state.typed) if secret else clean(state.typed, ascii_only)) + "_"
    if width_of(echo) + 2 <= width:
        return "> " + echo
    return "> " + glyphs.ellipsis + _tail(echo, width - 3)


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


def status_text(state: MenuState, width: int | None = None) -> str:
    """The status line: what the keys do here; a shorter form when `width` is too narrow for the long."""
    forms = _status_forms(state)
    if width is not None:
        for form in forms:
            if width_of(form) <= width:
                return form
    return forms[0] if width is None else forms[-1]


def _status_forms(state: MenuState) -> list[str]:
    if state.screen is Screen.MAIN:
        left = state.countdown()
        if left is not None and state.default:
            return [
                f"Booting {state.default} in {left} s. Press any key to stop the countdown.",
                f"Booting {state.default} in {left} s. Any key stops it.",
                f"Booting {state.default} in {left} s.",
            ]
        if state.digits:
            return [f"Row {state.digits}  (more digits, or Enter)", f"Row {state.digits} (Enter)"]
        usable = [(a.key, a.label) for a, reason in state.actions() if a.in_status and reason is None]
        names = [("Enter" if key.startswith("KEY_") else key, label) for key, label in usable]
        return [
            " ".join(f"{key}={label}" for key, label in names),
            " ".join(key if label != "help" else f"{key}=help" for key, label in names),
        ]
    return {
        Screen.HELP: ["j/k PgUp/PgDn scroll   q back"],
        Screen.JOURNAL: ["j/k PgUp/PgDn scroll   q back"],
        Screen.HISTORY: [
            "1-9 j/k pick   Enter roll back (new env)   D in place (destroys)   q back",
            "Enter=new env  D=in place (destroys)  q=back",
            "Enter=new env D=in place q=back",
        ],
        Screen.CONFIRM: (
            ["type the word, then Enter; anything else cancels", "type the word + Enter; else cancels"]
            if state.wants_text()
            else ["y yes   any other key: no"]
        ),
        Screen.BUSY: ["working - please wait"],
    }.get(state.screen, [""])


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
    messages = message_lines(state, cols, ascii_only)
    # the screens other than the main one use the message rows the message leaves free: a question's
    # prompt must fit on the smallest screen
    message_rows = MESSAGE_ROWS if state.screen is Screen.MAIN else len(messages)
    if state.screen is Screen.MAIN:
        out += _main(state, size, glyphs, ascii_only)
    else:
        out += _body(state, size, max(1, rows - 2 - message_rows), glyphs, ascii_only)
    for i in range(message_rows):
        text, error = messages[i] if i < len(messages) else ("", False)
        out.append(Line(fit(text, cols, glyphs), Style.ERROR if error else Style.PLAIN))
    out.append(Line(fit(" " + status_text(state, cols - 1), cols, glyphs), Style.STATUS))
    out = out[: rows - 1] + [out[-1]] if len(out) > rows else out
    return [Line(fit(line.text, cols, glyphs), line.style, line.styled) for line in out]


def _main(state: MenuState, size: Size, glyphs: Glyphs, ascii_only: bool) -> list[Line]:
    wide = size.cols >= WIDE_COLS
    list_w = size.cols - SIDE_WIDTH if wide else size.cols
    height = list_height(size)
    rows = state.rows()
    layout = list_layout(state, list_w, glyphs, ascii_only)
    top = max(0, min(state.list_top, max(0, len(rows) - height)))
    shown: list[Line] = [Line(list_header(list_w, glyphs, layout), Style.HEADER)]
    for i in range(top, top + height):
        if i < len(rows):
            text = list_row(state, rows[i], i + 1, list_w, glyphs, ascii_only, layout)
            if i == state.cursor:  # reverse video on the marker, the number and the name: a move rewrites
                prefix = width_of(f"{glyphs.cursor} {i + 1:>3}   ")  # little of a row (list_row's prefix)
                shown.append(Line(text, Style.SELECTED, prefix + layout.name))
            else:
                shown.append(Line(text))
        elif i == 0:
            shown.append(Line(fit("  (no boot environments found)", list_w, glyphs)))
        else:
            shown.append(Line(" " * list_w))
    if wide:
        side = details_lines(state, SIDE_WIDTH - 2, height + 1, glyphs, ascii_only)
        # the selection's reverse video must not run into the pane: the pane is plain text
        return [
            Line(line.text + " " + glyphs.vline + side[i], line.style, min(line.styled or list_w, list_w))
            for i, line in enumerate(shown)
        ]
    below = details_height(size)
    if below:
        label = f"{glyphs.hline * 2} details "
        shown.append(Line((label + glyphs.hline * size.cols)[: size.cols]))
        shown += [Line(t) for t in details_lines(state, size.cols, below, glyphs, ascii_only)]
    return shown


def stack(
    height: int,
    head: Sequence[str],
    middle: Sequence[str],
    tail: Sequence[str],
    width: int,
    glyphs: Glyphs = ASCII,
    *,
    top_gap: bool = False,
) -> list[str]:
    """A heading, an explanation and a prompt in at most `height` lines, with blank lines between them
    (and above, with `top_gap`) while there is room. When there is not room for everything the blank lines
    go first, then the end of the explanation (its last line shown ends in an ellipsis); the head and the
    tail stay whole, and if even they do not fit, the tail (the prompt) wins over the head."""
    # the blank lines that go first: the one at the top, then the one under the head, then the one above
    # the tail (the prompt stands apart longest)
    for top, under_head, above_tail in ((top_gap, True, True), (False, True, True), (False, False, True)):
        out = [""] if top else []
        out += head
        out += [""] if under_head and head and (middle or tail) else []
        out += middle
        out += [""] if above_tail and tail and (head or middle) else []
        out += tail
        if len(out) <= height:
            return out
    if len(head) + len(middle) + len(tail) <= height:
        return [*head, *middle, *tail]
    room = height - len(head) - len(tail)
    if room > 0:
        kept = list(middle[:room])
        while len(kept) > 1 and not kept[-1].strip():
            kept.pop()
        kept[-1] = _head(kept[-1].rstrip(), width - 1) + glyphs.ellipsis
        return [*head, *kept, *tail]
    if height >= len(tail):
        return [*head[: height - len(tail)], *tail]
    return list(tail[len(tail) - height :])


def _window(top: int, cursor: int, room: int, count: int) -> int:
    """The first row shown of `count` rows in `room` lines, so that the cursor is shown."""
    top = max(cursor - room + 1, min(top, cursor))
    return max(0, min(top, max(0, count - room)))


def _body(state: MenuState, size: Size, height: int, glyphs: Glyphs, ascii_only: bool) -> list[Line]:
    cols = size.cols
    width = max(1, cols - MARGIN)
    lines: Sequence[str]
    styles: dict[int, Style] = {}
    if state.screen is Screen.HELP:
        lines = help_lines(state, cols)[state.help_top :]
    elif state.screen is Screen.JOURNAL:
        lines = ["When              Who       Action                 Target           Outcome     Detail"]
        styles[0] = Style.HEADER
        lines += journal_lines(state, ascii_only)[state.journal_top :]
    elif state.screen is Screen.HISTORY:
        intro = [wrap(clean(text, ascii_only), width) for text in history_intro(state)]
        head, middle = intro[0], [line for part in intro[1:] for line in part]
        entries = history_lines(state, width, glyphs, ascii_only)
        room = max(height - len(head) - len(middle) - 1, min(MIN_HISTORY_ROWS, len(entries)))
        room = max(1, min(room, len(entries), height - len(head)))
        top = _window(state.history_top, state.history_cursor, room, len(entries))
        tail = entries[top : top + room]
        lines = stack(height, head, middle, tail, width, glyphs)
        selected = len(lines) - len(tail) + state.history_cursor - top
        if 0 <= selected < len(lines) and tail:
            styles[selected] = Style.SELECTED
    elif state.screen is Screen.CONFIRM and state.pending is not None:
        pending = state.pending
        head = wrap(clean(pending.title, ascii_only), width)
        middle = wrap_all((clean(text, ascii_only) for text in pending.lines), width)
        tail = wrap(clean(pending.prompt, ascii_only), width)
        if pending.word is not None:
            tail.append(typed_echo(state, width, glyphs, ascii_only))
        lines = stack(height, head, middle, tail, width, glyphs, top_gap=True)
    else:
        busy = busy_lines(state, glyphs, ascii_only)  # the call, its progress, "", please wait
        head = wrap_all(busy[: 2 if state.progress else 1], width)
        lines = stack(height, head, wrap_all(busy[-1:], width), [], width, glyphs, top_gap=True)
    out = []
    for i in range(height):
        text = clean(lines[i], ascii_only) if i < len(lines) else ""
        out.append(Line(fit(" " * MARGIN + text if text else "", cols, glyphs), styles.get(i, Style.PLAIN)))
    return out
