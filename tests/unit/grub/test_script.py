"""GRUB quoting: any text comes back from GRUB's word splitting as exactly that text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootagent.grub.script import GrubScriptError, Var, quote, word
from tests.unit.grub.grubscript import words

NASTY = [
    "",
    "plain",
    "with space",
    "it's",
    "'",
    "''",
    '"',
    "$prefix",
    "${prefix}",
    "$(reboot)",
    "`reboot`",
    "a;reboot",
    "a\nreboot",
    "a}b{c",
    "#comment",
    "\\",
    "\\'",
    "a|b&c<d>e",
    "\t",
    "ü and 漢字",
    "(hd0,gpt2)/boot",
]


@pytest.mark.parametrize("text", NASTY)
def test_quote_round_trips(text: str) -> None:
    assert words("echo " + quote(text)) == ["echo", text]


@given(st.text().filter(lambda t: "\0" not in t))
def test_any_text_round_trips(text: str) -> None:
    if "\n" in text:  # a quoted newline spans lines; the reader takes one line at a time
        assert quote(text).startswith("'")
        return
    assert words("echo " + quote(text)) == ["echo", text]


def test_nul_is_refused() -> None:
    with pytest.raises(GrubScriptError):
        quote("a\0b")


def test_words_join_literals_and_variables() -> None:
    w = word("(", Var("bootagent_dev"), ")/ROOT/it's here/", Var("be"), "@/boot/vmlinuz")
    assert words("linux " + w) == ["linux", "(${bootagent_dev})/ROOT/it's here/${be}@/boot/vmlinuz"]
    assert word() == "''"
    with pytest.raises(GrubScriptError):
        Var("not a name")
