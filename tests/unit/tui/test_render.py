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
    fit,
    list_height,
    render,
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
    assert fit("中文字", 4, UNICODE) == "中…" + " "
    assert fit("x", 0) == ""
    assert clean("a\x00b\u00e9", True) == "a?b?"


@pytest.mark.parametrize("screen_keys", [["?"], ["r"], ["r", "D"], ["!"], ["s"], ["R"]])
@pytest.mark.parametrize(("rows", "cols"), [(24, 80), (43, 132), (12, 40), (60, 200)])
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
    assert out[1].startswith(" Roll back beta: pick how many steps back")
    assert out[5].startswith(" >   1  beta@s3")
    assert out[7].startswith("     3  beta@s1")
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
