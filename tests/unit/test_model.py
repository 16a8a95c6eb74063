"""Names and small value helpers."""

from __future__ import annotations

import pytest

from bootagent.errors import InvalidNameError
from bootagent.model import CreatedBy, PoolHealth, split_target, validate_name


@pytest.mark.parametrize("name", ["beta", "pre-upgrade_2026.11", "a+b", "0day", "x" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("has space", "' '"),
        ('dq"', "'\"'"),
        ("sq'", '"\'"'),
        ("ümlaut", "'ü'"),
        ("-x", "leading punctuation"),
        ("a/b", "'/'"),
        ("x" * 65, "65 characters"),
        ("", "empty"),
    ],
)
def test_invalid_names_say_why(name: str, fragment: str) -> None:
    with pytest.raises(InvalidNameError) as exc:
        validate_name(name, what="environment name")
    assert fragment in exc.value.message
    assert "environment name" in exc.value.message


def test_split_target() -> None:
    assert split_target("beta") == ("beta", None)
    assert split_target("beta@s1") == ("beta", "s1")
    with pytest.raises(InvalidNameError):
        split_target("beta@")
    with pytest.raises(InvalidNameError):
        split_target("be ta@s1")


def test_parse_helpers_are_total() -> None:
    assert CreatedBy.parse("package-manager") is CreatedBy.PACKAGE_MANAGER
    assert CreatedBy.parse("nonsense") is CreatedBy.UNKNOWN
    assert CreatedBy.parse(None) is CreatedBy.UNKNOWN
    assert PoolHealth.parse("degraded") is PoolHealth.DEGRADED
    assert PoolHealth.parse("???") is PoolHealth.UNKNOWN
