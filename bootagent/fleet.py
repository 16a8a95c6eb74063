"""The machine's state for the tools a fleet already runs: Prometheus' text format, for node_exporter's
textfile collector, made from `bootagent status --json` (one source: what the JSON says, the metrics say).

node_exporter reads every `*.prom` in its textfile directory (Debian: /var/lib/prometheus/node-exporter)
at each scrape; the file is replaced in one rename, so a scrape never sees half of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STATUS_SCHEMA = 1  # `status --json`: bumped when a field changes meaning or goes; new fields do not bump it
PREFIX = "bootagent_"


@dataclass(frozen=True)
class Metric:
    name: str  # without the prefix
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: str = "gauge"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The text exposition format: HELP and TYPE once per name, then its samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        name = PREFIX + metric.name
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {metric.help}")
            lines.append(f"# TYPE {name} {metric.kind}")
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(metric.labels.items()))
        lines.append(
            f"{name}{{{labels}}} {_number(metric.value)}" if labels else f"{name} {_number(metric.value)}"
        )
    return "\n".join(lines) + "\n"


def _epoch(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def metrics(status: Mapping[str, Any], *, now: float) -> list[Metric]:
    """The metrics of one `status --json` document."""
    pool = status.get("pool") or {}
    pool_name = str(pool.get("name", ""))
    counting = status.get("boot_counting") or {}
    reset = status.get("factory_reset") or {}
    retention = status.get("retention") or {}
    checkpoints: Mapping[str, int] = status.get("checkpoints") or {}
    out = [
        Metric(
            "info",
            "The running, default and last-known-good environments (the value is always 1).",
            1,
            {
                "version": str(status.get("version", "")),
                "pool": pool_name,
                "running": str(status.get("running") or ""),
                "default": str(status.get("active") or ""),
                "last_known_good": str(status.get("last_known_good") or ""),
                "next_boot": str(status.get("next_boot") or ""),
            },
        ),
        Metric(
            "pool_healthy",
            "1 when the pool is ONLINE.",
            1 if pool.get("health") == "ONLINE" else 0,
            {"pool": pool_name},
        ),
        Metric(
            "pool_health",
            "The pool's health (the value is always 1).",
            1,
            {"pool": pool_name, "health": str(pool.get("health", ""))},
        ),
        Metric("pool_size_bytes", "The pool's size.", float(pool.get("size", math.nan)), {"pool": pool_name}),
        Metric(
            "pool_free_bytes",
            "The pool's free space.",
            float(pool.get("free", math.nan)),
            {"pool": pool_name},
        ),
        Metric("environments", "Boot environments.", float(status.get("environments", math.nan))),
    ]
    out += [
        Metric(
            "checkpoints", "Snapshots of boot environments, by who made them.", float(n), {"created_by": who}
        )
        for who, n in sorted(checkpoints.items())
    ]
    out += [
        Metric(
            "last_checkpoint_timestamp_seconds",
            "When the newest snapshot of any boot environment was taken (NaN: none).",
            _epoch(status.get("last_checkpoint_epoch")),
        ),
        Metric(
            "last_export_timestamp_seconds",
            "When an environment was last exported whole (bootagent export; NaN: never).",
            _epoch(status.get("last_export_epoch")),
        ),
        Metric(
            "last_good_boot_timestamp_seconds",
            "When a boot was last marked good (NaN: never).",
            _epoch(status.get("last_good_epoch")),
        ),
        Metric(
            "boot_count",
            "Boots counted since the last good one: GRUB counts each boot as it starts and a good boot "
            "clears the count, so the boot under way counts until it is marked good.",
            float(counting.get("tries", 0) or 0),
        ),
        Metric(
            "boot_count_limit",
            "Failed boots before unattended recovery.",
            float(counting.get("limit", 0) or 0),
        ),
        Metric(
            "unattended_recovery_active",
            "1 while unattended recovery is stepping through its fallbacks.",
            1 if counting.get("ladder") else 0,
        ),
        Metric(
            "pending_operations",
            "Operations cut short (an intent in the journal without an outcome).",
            float(len(status.get("pending") or [])),
        ),
        Metric(
            "factory_resets_total",
            "Factory resets carried out on this machine.",
            float(reset.get("count", 0) or 0),
            kind="counter",
        ),
        Metric(
            "factory_reset_pending",
            "1 while a factory reset is asked for or under way.",
            1 if reset.get("requested") or reset.get("under_way") else 0,
        ),
        Metric(
            "prune_candidates",
            "Checkpoints the next prune would remove.",
            float(len(retention.get("would_remove") or [])),
        ),
        Metric(
            "journal_unreadable_lines",
            "Journal lines that could not be read.",
            float((status.get("journal_damage") or {}).get("unreadable", 0) or 0),
        ),
        Metric(
            "grubenv_damaged",
            "1 when GRUB's environment block could not be read.",
            1 if status.get("grubenv_damaged") else 0,
        ),
        Metric("textfile_timestamp_seconds", "When this file was written.", now),
    ]
    return out
