"""Small value helpers (names: test_names.py)."""

from __future__ import annotations

from bootagent.model import CreatedBy, PoolHealth


def test_parse_helpers_are_total() -> None:
    assert CreatedBy.parse("package-manager") is CreatedBy.PACKAGE_MANAGER
    assert CreatedBy.parse("nonsense") is CreatedBy.UNKNOWN
    assert CreatedBy.parse(None) is CreatedBy.UNKNOWN
    assert PoolHealth.parse("degraded") is PoolHealth.DEGRADED
    assert PoolHealth.parse("???") is PoolHealth.UNKNOWN


def test_every_bootagent_property_is_one_the_listings_ask_for() -> None:
    """The listings name the properties (zfs get all is four times the listing); one set anywhere in the
    source but not in Prop would be written and never read back."""
    import re
    from pathlib import Path

    from bootagent.model import PROP_PREFIX, Prop

    source = Path(__file__).resolve().parents[2] / "bootagent"
    named = set()
    for path in source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        named |= set(re.findall(r'PROP_PREFIX \+ "([a-z-]+)"', text))
        named |= set(re.findall(r'"org\.bootagent:([a-z-]+)', text))
    assert named, "the search found none at all"
    assert {PROP_PREFIX + n for n in named} <= {p.value for p in Prop}
