"""The renderer: exact lines for a state and a size, without a terminal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootagent.tui import state as S
from bootagent.tui.app import initial_state
from bootagent.tui.render import (
    ASCII,
    UNICODE,
    Line,
    Size,
    Style,
    clean,
    cut_middle,
    fit,
    list_height,
    render,
    shorten_names,
    stack,
    width_of,
)
from bootagent.tui.settings import MenuSettings
from tests.unit.tui.fake_session import FakeSession


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def menu(tmp_path: Path) -> S.MenuState:
    return initial_state(FakeSession(tmp_path), MenuSettings(timeout=10), 0.0)


def frame(state: S.MenuState, rows: int, cols: int, *, ascii_only: bool = True) -> list[Line]:
    size = Size(rows, cols)
    state.page = list_height(size)
    state.width = cols
    out = render(state, size, ASCII if ascii_only else UNICODE, ascii_only=ascii_only)
    assert len(out) == rows
    assert all(width_of(line.text) == cols for line in out), [width_of(line.text) for line in out]
    return out


def texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


EXPECTED_80X24 = [
    " bootagent boot menu - pool rpool ONLINE                                        ",
    "    #   environment          flags created             used  description        ",
    "    1   + alpha              G     2023-11-15 01:13    1.0M  alpha system       ",
    "    2   - beta               A     2023-11-15 05:13    1.0M  beta system        ",
    ">   3     |- @s1                   2023-11-15 06:13    1.0M  step 1             ",
    "    4     |- @s2                   2023-11-15 07:13    1.0M  step 2             ",
    "    5     `- @s3                   2023-11-15 08:13    1.0M  step 3             ",
    "    6   + gamma              -     2023-11-15 09:13    1.0M  gamma system: tri~ ",
    *[" " * 80] * 6,
    "-- details ---------------------------------------------------------------------",
    "beta@s1  (s: boot as a new environment)                                         ",
    "created: 2023-11-15 06:13               used: 1.0M (refer 1.0G)                 ",
    "made by: manual                         clones: -                               ",
    "description: step 1                                                             ",
    *[" " * 80] * 4,
    " Enter=boot s=snapshot r=rollback l=log !=shell R=reboot P=off ?=help           ",
]


def test_main_screen_at_80x24_exactly(menu: S.MenuState) -> None:
    menu.handle("+")
    menu.handle("j")
    out = frame(menu, 24, 80)
    assert texts(out) == EXPECTED_80X24
    assert out[0].style is Style.TITLE
    assert out[4].style is Style.SELECTED
    assert out[-1].style is Style.STATUS


def test_countdown_and_environment_details_at_80x24(menu: S.MenuState) -> None:
    out = texts(frame(menu, 24, 80))
    assert out[-1] == fit(" Booting beta in 10 s. Press any key to stop the countdown.", 80)
    assert out[15].startswith("beta  [active (default)]")
    assert out[16].startswith("dataset: rpool/ROOT/beta                created: 2023-11-15 05:13")
    assert out[17].startswith("kernel: 6.1.0-30-amd64                  used: 1.0M (refer 1.0G)")
    assert out[18].startswith("origin: -                               last good: never marked good")
    assert out[19].startswith("description: beta system")


def test_wide_screen_puts_the_details_beside_the_list(menu: S.MenuState) -> None:
    menu.handle("k")
    out = texts(frame(menu, 43, 132))
    assert out[1].startswith("    #   environment")
    assert out[1][88:] == " |alpha  [last-known-good]                  "
    assert out[2][89:].startswith("|dataset: rpool/ROOT/alpha")
    assert out[2].startswith(">   1   + alpha")
    assert "|kernel: 6.1.0-30-amd64" in out[4]
    assert "|last good: 2023-11-15 02:00" in out[7]
    assert all(line[89] == "|" for line in out[1:39])
    assert out[-1].startswith(" Enter=boot r=rollback l=log !=shell R=reboot P=off ?=help")


def test_flags_are_shown(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, running=True)
    session.envs.activate("gamma", once=True)
    st = initial_state(session, MenuSettings(), 0.0)
    rows = texts(frame(st, 24, 80))[2:5]
    assert rows[0][29:35] == "G     "  # alpha: last-known-good
    assert rows[1][29:35] == "AR    "  # beta: active, running
    assert rows[2][29:35] == "N     "  # gamma: next boot only
    st.handle("+")
    st.handle("j")
    st.handle("j")
    assert "gamma@s2  [keep]" in texts(frame(st, 24, 80))[15]


def test_small_screens_drop_the_details_but_keep_title_list_and_status(menu: S.MenuState) -> None:
    out = texts(frame(menu, 10, 40))
    assert out[0].startswith(" bootagent boot menu")
    assert out[3].startswith(">   2   + beta")
    assert out[-1].startswith(" Booting beta in 10 s.")
    assert not any("details" in line for line in out)


def test_unicode_glyphs_only_when_asked(menu: S.MenuState) -> None:
    menu.handle("+")
    menu.handle("j")
    plain = "".join(texts(frame(menu, 24, 80)))
    fancy = "".join(texts(frame(menu, 24, 80, ascii_only=False)))
    assert plain.isascii()
    assert "├─ @s1" in fancy
    assert "▶" in fancy
    assert "─ details ─" in fancy


def test_descriptions_are_cleaned(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.zfs.nodes["rpool/ROOT/beta"].user_props["org.bootagent:description"] = (
        "caf\u00e9\x1b[2J\tok\u4e2d"
    )
    st = initial_state(session, MenuSettings(), 0.0)
    ascii_text = "\n".join(texts(frame(st, 24, 80)))
    assert "\x1b" not in ascii_text
    assert "caf??[2J ok?" in ascii_text
    wide = texts(frame(st, 24, 80, ascii_only=False))
    assert any("café?[2J ok中" in line for line in wide)


def test_fit_and_clean() -> None:
    assert fit("abcdef", 4) == "abc~"
    assert fit("ab", 4) == "ab  "
    assert fit("abc      ", 4) == "abc "  # trailing padding is no overflow: nothing is cut
    assert fit("abcd     ", 4) == "abcd"
    assert fit("中文字", 4, UNICODE) == "中…" + " "
    assert fit("x", 0) == ""
    assert clean("a\x00b\u00e9", True) == "a?b?"


@pytest.mark.parametrize("screen_keys", [["?"], ["r"], ["r", "D"], ["!"], ["s"], ["R"]])
@pytest.mark.parametrize(("rows", "cols"), [(24, 80), (43, 132), (12, 40), (10, 40), (60, 200)])
def test_every_screen_fits_every_size(
    menu: S.MenuState, screen_keys: list[str], rows: int, cols: int
) -> None:
    for key in screen_keys:
        menu.handle(key)
    out = frame(menu, rows, cols)
    assert out[0].text.startswith(" bootagent boot menu")


def test_help_lists_every_action_key(menu: S.MenuState) -> None:
    menu.handle("?")
    text = "\n".join(texts(frame(menu, 60, 100)))
    for action in S.ACTIONS:
        assert f"  {action.key_name or action.key} " in text
    assert "Ctrl-L" in text
    assert "Flags: A active (default)" in text


def test_history_and_typed_confirmation_screens(menu: S.MenuState) -> None:
    menu.handle("r")
    out = texts(frame(menu, 24, 80))
    assert out[1].startswith(" Roll back beta: how many steps back?")
    assert out[3].startswith(" The earlier states of beta, newest first.")
    assert out[8] == fit(" >   1  beta@s3 2023-11-15 08:13 step 3", 80)
    assert out[10].startswith("     3  beta@s1")
    menu.handle("D")
    menu.handle("R")
    menu.handle("O")
    out = texts(frame(menu, 24, 80))
    assert out[2].startswith(" Roll beta back IN PLACE to beta@s3")
    assert any("Type ROLLBACK and press Enter" in line for line in out)
    assert any(line.startswith(" > RO_") for line in out)


def test_busy_screen_shows_spinner_seconds_and_progress(menu: S.MenuState) -> None:
    menu.start(S.boot_snapshot_call("beta@s1"))
    menu.report("cloning beta@s1")
    menu.now = 3.4
    out = texts(frame(menu, 24, 80))
    assert out[2].startswith(" / booting beta@s1 as a new environment  (3 s)")
    assert out[3].startswith("   cloning beta@s1")
    assert out[-1].startswith(" working - please wait")


def test_error_messages_show_message_and_hint(menu: S.MenuState) -> None:
    menu.message = S.Message("booting beta failed: no kernel", "choose another", error=True)
    out = frame(menu, 24, 80)
    assert out[20].text.startswith("error: booting beta failed: no kernel")
    assert out[21].text.startswith("hint: choose another")
    assert out[20].style is Style.ERROR
    menu.message = S.Message("x" * 300, "the hint", error=True)
    out = frame(menu, 24, 80)
    assert out[21].text.endswith("xx~")
    assert out[22].text.startswith("hint: the hint")


# --- small screens: every screen keeps its title, its prompt and the echo of a typed word ------------
def body_text(lines: list[str]) -> str:
    """The screen's words in reading order (wrapped lines joined again)."""
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


CONFIRMATIONS = {
    "rollback in place": (["r", "D", *"ROLL"], "Roll beta back IN PLACE to beta@s3"),
    "boot a snapshot": (["+", "j", "s"], "Boot snapshot beta@s1"),
    "reboot": (["R"], "Reboot?"),
    "power off": (["P"], "Power off?"),
}


@pytest.mark.parametrize("which", CONFIRMATIONS)
@pytest.mark.parametrize(("rows", "cols"), [(10, 40), (11, 40), (12, 40), (10, 41), (24, 80), (43, 132)])
@pytest.mark.parametrize("message", [False, True])
def test_confirmations_keep_title_prompt_and_echo(
    menu: S.MenuState, which: str, rows: int, cols: int, message: bool
) -> None:
    keys, title = CONFIRMATIONS[which]
    for key in keys:
        menu.handle(key)
    pending = menu.pending
    assert pending is not None
    if message:  # a log record may arrive while the question is up: a message of 3 rows
        menu.message = S.Message("a warning from the pool " * 10, "and its hint", error=True)
    out = texts(frame(menu, rows, cols))
    body = out[1:-1]
    assert any(line.strip() == title for line in body), out
    assert " ".join(pending.prompt.split()) in body_text(body), out
    if pending.word is not None:
        assert any(line.startswith(" > ROLL_") for line in body), out
        assert "type the word" in out[-1]
    else:
        assert out[-1].startswith(" y yes")
    if message:
        assert any(line.startswith("error: a warning from the pool") for line in body)


def test_long_explanations_wrap_to_the_width(menu: S.MenuState) -> None:
    for key in ("r", "D"):
        menu.handle(key)
    assert menu.pending is not None
    for cols in (80, 60, 44):
        out = texts(frame(menu, 40, cols))
        for paragraph in menu.pending.lines:
            assert " ".join(paragraph.split()) in body_text(out), (cols, out)
        assert not any(line.rstrip().endswith("~") for line in out), out  # nothing was cut


def test_without_room_the_explanation_is_shortened_not_the_prompt(menu: S.MenuState) -> None:
    for key in ("r", "D", *"ROLLBACK"):
        menu.handle(key)
    menu.message = S.Message("x " * 60, "a hint")
    out = texts(frame(menu, 10, 40))
    assert out[1] == fit(" Roll beta back IN PLACE to beta@s3", 40)
    assert out[2].startswith(" This DESTROYS everything in beta")
    assert out[2].rstrip().endswith("~")  # the rest of the explanation did not fit
    assert [line.rstrip() for line in out[3:6]] == [
        " Type ROLLBACK and press Enter to go",
        " ahead; anything else cancels.",
        " > ROLLBACK_",
    ]
    assert out[-1].startswith(" type the word + Enter; else cancels")


def test_stack_drops_blank_lines_then_explanation_then_head() -> None:
    head, middle, tail = ["T"], ["a", "b", "c"], ["p", "> _"]
    assert stack(10, head, middle, tail, 20, top_gap=True) == ["", "T", "", "a", "b", "c", "", "p", "> _"]
    assert stack(8, head, middle, tail, 20, top_gap=True) == ["T", "", "a", "b", "c", "", "p", "> _"]
    assert stack(7, head, middle, tail, 20) == ["T", "a", "b", "c", "", "p", "> _"]
    assert stack(6, head, middle, tail, 20) == ["T", "a", "b", "c", "p", "> _"]
    assert stack(5, head, middle, tail, 20) == ["T", "a", "b~", "p", "> _"]
    assert stack(3, head, middle, tail, 20) == ["T", "p", "> _"]
    assert stack(2, head, middle, tail, 20) == ["p", "> _"]
    assert stack(1, head, middle, tail, 20) == ["> _"]


def test_echo_of_a_long_word_keeps_its_end(menu: S.MenuState) -> None:
    for key in ("r", "D", *("x" * 30), *"ROLLBACK"):
        menu.handle(key)
    out = texts(frame(menu, 10, 40))
    echo = [line for line in out if line.startswith(" > ")]
    assert echo == [" > ~" + ("x" * 30 + "ROLLBACK_")[-36:]]


def test_history_screen_at_40x10(menu: S.MenuState) -> None:
    menu.handle("r")
    out = texts(frame(menu, 10, 40))
    assert out[1] == fit(" Roll back beta: how many steps back?", 40)
    entries = [line for line in out if line[1:].lstrip(" >").startswith(("1  ", "2  ", "3  "))]
    assert [line[8:15] for line in entries] == ["beta@s3", "beta@s2", "beta@s1"]
    assert out[-1].startswith(" Enter=new env D=in place q=back")
    menu.handle("x")  # a message of three rows: the explanation gives way, the list stays
    out = texts(frame(menu, 10, 40))
    assert out[1] == fit(" Roll back beta: how many steps back?", 40)
    assert sum(1 for line in out if "beta@s" in line) == 3
    assert any(line.startswith(" >   1  beta@s3") for line in out)


def test_history_cursor_stays_on_screen_when_the_list_is_longer_than_the_room(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    for i in range(12):
        session.zfs.add_snap(f"rpool/ROOT/beta@auto-2026120{i % 10}-{i:06d}")
    st = initial_state(session, MenuSettings(), 0.0)
    st.handle("r")
    for _ in range(14):
        st.handle("j")
        out = frame(st, 10, 40)
        selected = [line.text for line in out if line.style is Style.SELECTED]
        assert len(selected) == 1
        assert selected[0].startswith(f" > {st.history_cursor + 1:>3}")


def test_history_rows_fit_the_width_and_cut_nothing_they_need_not(menu: S.MenuState) -> None:
    menu.handle("r")
    for rows, cols in ((24, 80), (10, 40), (43, 132)):
        out = texts(frame(menu, rows, cols))
        entries = [line for line in out if "beta@s" in line]
        assert len(entries) == 3
        assert not any(line.rstrip().endswith("~") for line in entries), out
        assert all(line.rstrip().endswith(("step 1", "step 2", "step 3")) for line in entries), out


def test_help_is_wrapped_and_scrolls_to_its_end(menu: S.MenuState) -> None:
    menu.handle("?")
    out = texts(frame(menu, 10, 40))
    assert not any(line.rstrip().endswith("~") for line in out[1:-1]), out
    menu.handle("G")
    out = texts(frame(menu, 10, 40))
    assert "any key stops it." in body_text(out[1:-1])


def test_status_line_has_short_forms_for_narrow_screens(menu: S.MenuState) -> None:
    assert texts(frame(menu, 10, 40))[-1] == fit(" Booting beta in 10 s. Any key stops it.", 40)
    menu.handle("j")
    assert texts(frame(menu, 10, 40))[-1] == fit(" Enter r l ! R P ?=help", 40)
    assert texts(frame(menu, 24, 80))[-1].startswith(" Enter=boot r=rollback l=log !=shell")


# --- names ---------------------------------------------------------------------------------------------
LONG_NAMES = ("auto-20261201-101010", "auto-20261201-101011", "before-the-big-upgrade-of-december")


@pytest.fixture
def long_names(tmp_path: Path) -> S.MenuState:
    session = FakeSession(tmp_path)
    for name in LONG_NAMES:
        session.zfs.add_snap(f"rpool/ROOT/beta@{name}", user_props={"org.bootagent:description": "auto"})
    st = initial_state(session, MenuSettings(), 0.0)
    st.handle("+")
    return st


def name_cells(out: list[str]) -> list[str]:
    """The name column of the snapshot rows (what follows the branch glyph)."""
    return [line.split("- @", 1)[1].split()[0] for line in out if "- @" in line]


def test_names_use_the_width_there_is(long_names: S.MenuState) -> None:
    for cols in (60, 80, 132, 200):
        out = texts(frame(long_names, 60, cols))
        assert name_cells(out) == ["s1", "s2", "s3", *LONG_NAMES], (cols, out)
    out = texts(frame(long_names, 24, 80))
    header = out[1]
    assert header.index("flags") > 8 + 20  # the name column grew for the long names
    row = next(line for line in out if "@before-the-big-upgrade-of-december" in line)
    assert row.index("2023-11-15") > header.index("flags")  # the creation time still fits at 80


def test_names_cut_in_the_middle_stay_distinguishable(long_names: S.MenuState) -> None:
    for cols in (40, 44, 50):
        out = texts(frame(long_names, 24, cols))
        names = name_cells(out)
        assert len(names) == 6
        assert len(set(names)) == 6, names
        auto = [n for n in names if n.startswith("auto")]
        assert [n[-6:] for n in auto] == ["101010", "101011"], names  # the end (the time) is kept
        assert any("~" in n for n in names)
        assert all(width_of(line) == cols for line in out)


def test_history_labels_cut_in_the_middle_stay_distinguishable(long_names: S.MenuState) -> None:
    long_names.handle("r")
    out = texts(frame(long_names, 24, 40))
    labels = [word for line in out for word in line.split() if word.startswith("beta@")]
    assert len(labels) == 6
    assert len(set(labels)) == 6, labels
    out = texts(frame(long_names, 24, 80))
    assert any("beta@before-the-big-upgrade-of-december " in line for line in out)


def test_cut_middle_and_shorten_names() -> None:
    assert cut_middle("auto-20261201-101010", 20) == "auto-20261201-101010"
    assert cut_middle("auto-20261201-101010", 13) == "auto~1-101010"
    assert cut_middle("auto-20261201-101010", 1) == "~"
    assert cut_middle("中文字中文字", 7, UNICODE) == "中…文字"
    # names that differ in the middle only: the cut moves until they differ
    names = ["backup-one-final", "backup-two-final"]
    shown = shorten_names(names, 10)
    assert len(set(shown.values())) == 2
    assert all(width_of(v) <= 10 for v in shown.values())
    assert shorten_names(["a", "b"], 5) == {"a": "a", "b": "b"}


def test_half_a_pair_is_marked_and_explained(tmp_path: Path) -> None:
    """On the HOWTO's two pools: the /boot half in the details; a missing half in the row and the details."""
    from tests.fakes import howto_pools

    session = FakeSession(tmp_path)
    howto_pools(session.zfs)
    session.zfs.mounted.pop("/boot", None)
    for name in [n for n in session.zfs.nodes if n.startswith("bpool/BOOT/gamma")]:
        del session.zfs.nodes[name]
    st = initial_state(session, MenuSettings(), 0.0)
    out = texts(frame(st, 24, 80))
    gamma = next(line for line in out if "gamma" in line and "#" not in line)
    assert gamma[29:31] == "! "
    assert gamma.endswith("NOT BOOTABLE: its~ ")
    assert out[16].startswith("dataset: rpool/ROOT/beta                /boot half: bpool/BOOT/beta")
    st.handle("j")
    out = texts(frame(st, 24, 80))
    assert out[15].startswith("gamma")
    assert out[19].startswith(
        "description: NOT BOOTABLE: its /boot half bpool/BOOT/gamma does not exist; gamma"
    )


def test_the_list_s_layout_and_rows_are_made_again_for_a_new_inventory_or_width(tmp_path: Path) -> None:
    """Both are made once and kept (thousands of snapshots): a new listing, a new width or an opened tree
    must still show at once."""
    from dataclasses import replace

    from bootagent.tui.render import list_layout

    session = FakeSession(tmp_path)
    state = initial_state(session, MenuSettings(timeout=0), 0.0)
    first = list_layout(state, 80)
    assert list_layout(state, 80) is first
    assert list_layout(state, 200) is not first
    rows = state.rows()
    assert state.rows() is rows
    state.handle("+")  # the selection's snapshots open
    assert len(state.rows()) == len(rows) + 3
    inv = state.inventory
    assert inv is not None
    longer = replace(inv.environments[0], name="a-much-longer-name-than-before")
    state.inventory = replace(inv, environments=(longer, *inv.environments[1:]))
    assert list_layout(state, 80) is not first
    assert state.rows()[0].env.name == "a-much-longer-name-than-before"
    assert "a-much-longer-name-than-before" in "\n".join(texts(frame(state, 24, 80)))


def test_the_selection_covers_the_name_whatever_the_row_number_s_width(tmp_path: Path) -> None:
    from bootagent.tui.render import list_layout

    session = FakeSession(tmp_path, environments=997)  # 1000 rows
    state = initial_state(session, MenuSettings(timeout=0), 0.0)
    for key, row, prefix in (("g", 1, 8), ("G", 1000, 9)):
        state.handle(key)
        assert state.cursor == row - 1
        lines = frame(state, 24, 80)
        [selected] = [line for line in lines if line.style is Style.SELECTED]
        assert selected.styled == prefix + list_layout(state, 80).name
        assert selected.text[: selected.styled].rstrip().endswith(state.rows()[row - 1].env.name)
