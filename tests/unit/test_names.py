"""The one name rule: what it accepts, why it refuses, and its GRUB form."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootagent.errors import InvalidNameError
from bootagent.names import GRUB_REGEXP, name_problem, shown, split_target, validate_name, zfs_allows


@pytest.mark.parametrize("name", ["beta", "pre-upgrade_2026.11", "a:b", "0day", "x" * 64, "v1.2-rc:3"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("has space", "kernel command line"),
        ("a+b", "'+' (ZFS itself does not allow it)"),
        ('dq"', "'\"'"),
        ("sq'", "'\\''"),
        ("ümlaut", "'\\xfc'"),
        ("-x", "starts with '-'"),
        (".hidden", "starts with '.'"),
        (":x", "starts with ':'"),
        ("a/b", "'/'"),
        ("a@b", "'@'"),
        ("x" * 65, "65 characters"),
        ("", "empty"),
        ("tab\there", "'\\t'"),
        ("bad\udcffbyte", "'\\xff'"),
    ],
)
def test_invalid_names_say_why(name: str, fragment: str) -> None:
    with pytest.raises(InvalidNameError) as exc:
        validate_name(name, what="environment name")
    assert fragment in exc.value.message
    assert "environment name" in exc.value.message
    exc.value.message.encode("ascii")  # printable on any terminal, whatever the name held


def test_split_target() -> None:
    assert split_target("beta") == ("beta", None)
    assert split_target("beta@s1") == ("beta", "s1")
    assert split_target("a:b@c:d") == ("a:b", "c:d")
    with pytest.raises(InvalidNameError):
        split_target("beta@")
    with pytest.raises(InvalidNameError):
        split_target("be ta@s1")
    with pytest.raises(InvalidNameError):
        split_target("")


def test_zfs_rule() -> None:
    assert zfs_allows("my test")
    assert zfs_allows("a:b")
    assert not zfs_allows("a+b")
    assert not zfs_allows("..")
    assert not zfs_allows("")


@given(st.text(max_size=80) | st.text(alphabet="ab:-._ +", min_size=60, max_size=70))
def test_every_accepted_name_is_a_zfs_name_and_matches_the_grub_form(name: str) -> None:
    ok = name_problem(name) is None
    assert ok == bool(re.fullmatch(GRUB_REGEXP.strip("^$"), name))
    if ok:
        assert zfs_allows(name)
    shown(name).encode("ascii")


@given(st.text(alphabet="abc -_.:+/@", min_size=1, max_size=10))
def test_zfs_names_outside_the_rule_always_have_a_reason(name: str) -> None:
    problem = name_problem(name)
    if " " in name:
        assert problem is not None
        assert "space" in problem
    if problem is None:
        assert name[0].isalnum()
