"""node_exporter's textfile: the status as Prometheus metrics, read back with Prometheus' own parser."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bootagent.fleet import Metric, metrics, render

STATUS: dict[str, Any] = {
    "schema_version": 1,
    "version": "0.1.0",
    "pool": {"name": "rpool", "health": "DEGRADED", "size": 8 << 30, "free": 3 << 30},
    "environments": 3,
    "checkpoints": {"manual": 9, "package-manager": 2},
    "last_checkpoint_epoch": 1_800_000_000,
    "last_good_epoch": None,
    "last_export_epoch": 1_799_000_000,
    "active": "beta",
    "next_boot": None,
    "running": "beta",
    "last_known_good": 'odd "name"\\with\nnewline',
    "grubenv_damaged": False,
    "pending": [{"op": "x"}],
    "journal_damage": {"unreadable": 2},
    "boot_counting": {"tries": 2, "limit": 3, "ladder": None},
    "factory_reset": {"count": 1, "requested": "keep-data", "under_way": None},
    "retention": {"would_remove": [{"snapshot": "beta@apt-1"}]},
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_the_textfile_parses_and_says_what_status_says() -> None:
    text = render(metrics(STATUS, now=1_800_000_123.0))
    got = samples(text)
    assert got[("bootagent_pool_healthy", (("pool", "rpool"),))] == 0
    assert got[("bootagent_pool_health", (("health", "DEGRADED"), ("pool", "rpool")))] == 1
    assert got[("bootagent_pool_free_bytes", (("pool", "rpool"),))] == 3 << 30
    assert got[("bootagent_environments", ())] == 3
    assert got[("bootagent_checkpoints", (("created_by", "package-manager"),))] == 2
    assert got[("bootagent_last_checkpoint_timestamp_seconds", ())] == 1_800_000_000
    assert math.isnan(got[("bootagent_last_good_boot_timestamp_seconds", ())])  # never
    assert got[("bootagent_last_export_timestamp_seconds", ())] == 1_799_000_000
    assert got[("bootagent_boot_count", ())] == 2
    assert got[("bootagent_pending_operations", ())] == 1
    assert got[("bootagent_factory_resets_total", ())] == 1
    assert got[("bootagent_factory_reset_pending", ())] == 1
    assert got[("bootagent_prune_candidates", ())] == 1
    assert got[("bootagent_journal_unreadable_lines", ())] == 2
    assert got[("bootagent_textfile_timestamp_seconds", ())] == 1_800_000_123
    info = next(labels for (name, labels) in got if name == "bootagent_info")
    assert dict(info)["last_known_good"] == 'odd "name"\\with\nnewline'  # escaped, and read back whole
    assert dict(info)["running"] == "beta"
    assert text.count("# TYPE bootagent_checkpoints gauge") == 1  # one header for both samples


def test_an_empty_status_still_parses() -> None:
    got = samples(render(metrics({}, now=0.0)))
    assert math.isnan(got[("bootagent_environments", ())])  # not known
    assert got[("bootagent_boot_count", ())] == 0


def test_numbers_are_written_as_prometheus_reads_them() -> None:
    text = render([Metric("a", "h", 1.5), Metric("b", "h", float("inf")), Metric("c", "h", 7)])
    assert "bootagent_a 1.5\n" in text
    assert "bootagent_b +Inf\n" in text
    assert "bootagent_c 7\n" in text
