"""Small value helpers (names: test_names.py)."""

from __future__ import annotations

from bootagent.model import CreatedBy, PoolHealth


def test_parse_helpers_are_total() -> None:
    assert CreatedBy.parse("package-manager") is CreatedBy.PACKAGE_MANAGER
    assert CreatedBy.parse("nonsense") is CreatedBy.UNKNOWN
    assert CreatedBy.parse(None) is CreatedBy.UNKNOWN
    assert PoolHealth.parse("degraded") is PoolHealth.DEGRADED
    assert PoolHealth.parse("???") is PoolHealth.UNKNOWN
