"""Turning domain values into text tables (ASCII only: serial consoles) and JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bootagent.environments import Inventory, RollbackResult, RollForwardResult
from bootagent.journal import JournalEntry
from bootagent.model import BootEnvironment, Flag, Snapshot
from bootagent.prune import PrunePlan
from bootagent.zfs.interface import DiffEntry

FLAG_LETTERS = {
    Flag.ACTIVE: "A",
    Flag.NEXT_BOOT: "N",
    Flag.RUNNING: "R",
    Flag.LAST_KNOWN_GOOD: "G",
    Flag.KEEP: "K",
}
FLAG_LEGEND = "flags: A active (default)  N next boot only  R running  G last-known-good  K keep"


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else None


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def flags_text(inv: Inventory, env: BootEnvironment) -> str:
    return "".join(FLAG_LETTERS[f] for f in inv.flags(env)) or "-"


# --- JSON ---------------------------------------------------------------------------------------------
def snapshot_json(snap: Snapshot) -> dict[str, Any]:
    return {
        "name": snap.label,
        "snapshot": snap.name,
        "dataset": snap.full_name,
        "created": iso(snap.created),
        "created_epoch": snap.created,
        "used": snap.used,
        "referenced": snap.referenced,
        "description": snap.description,
        "created_by": snap.created_by.value,
        "keep": snap.keep,
        "clones": list(snap.clones),
        "boot_dataset": snap.boot_name,  # the /boot half, on a boot pool (null: one pool, or missing)
        "missing_half": snap.missing_half,  # why this state cannot be booted or cloned, or null
    }


def environment_json(inv: Inventory, env: BootEnvironment, *, snapshots: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": env.name,
        "dataset": env.dataset,
        "created": iso(env.created),
        "created_epoch": env.created,
        "used": env.used,
        "referenced": env.referenced,
        "origin": env.origin,
        "kernel": env.kernel,
        "description": env.description,
        "created_by": env.created_by.value,
        "keep": env.keep,
        "last_good": iso(env.last_good),
        "rolled_back_from": env.rolled_back_from,
        "flags": [f.value for f in inv.flags(env)],
        "boot_dataset": env.boot_dataset,
        "missing_half": env.missing_half,
    }
    if snapshots:
        out["snapshots"] = [snapshot_json(s) for s in env.snapshots]
    return out


def inventory_json(inv: Inventory) -> dict[str, Any]:
    return {
        "pool": {
            "name": inv.pool.name,
            "health": inv.pool.health.value,
            "size": inv.pool.size,
            "free": inv.pool.free,
            "readonly": inv.pool.readonly,
            "bootfs": inv.pool.bootfs,
        },
        "active": inv.state.active,
        "next_boot": inv.state.next_once,
        "running": inv.state.running,
        "last_known_good": inv.state.last_known_good,
        "boot_container": inv.boot,  # "<boot pool>/<boot_root>" when /boot is on a pool of its own
        "orphans": list(inv.orphans),  # /boot halves whose root half does not exist
        "environments": [environment_json(inv, e) for e in inv.environments],
    }


def journal_json(entry: JournalEntry) -> dict[str, Any]:
    return {
        "time": iso(entry.time),
        "op": entry.op,
        "actor": entry.actor.value,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome.value,
        "detail": entry.detail,
        "data": dict(entry.data),
    }


def prune_json(plan: PrunePlan, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "destroyed" if not dry_run else "would_destroy": [
            {"name": i.snapshot.label, "reason": i.reason.value, "used": i.snapshot.used} for i in plan.items
        ],
        "free_before": plan.free_before,
        "free_after_estimate": plan.free_after_estimate,
        "size": plan.size,
        "space_goal_met": plan.space_goal_met,
    }


def rollback_json(result: RollbackResult) -> dict[str, Any]:
    return {
        "target": result.target.label,
        "environment": result.environment,
        "destructive": result.destructive,
        "destroyed": list(result.destroyed),
    }


def rollforward_json(result: RollForwardResult) -> dict[str, Any]:
    return {"environment": result.environment, "source": result.source, "created": result.created}


def diff_json(entries: Sequence[DiffEntry]) -> list[dict[str, Any]]:
    return [{"change": e.change.value, "path": e.path, "new_path": e.new_path} for e in entries]


# --- text ---------------------------------------------------------------------------------------------
def inventory_text(inv: Inventory, *, snapshots: bool) -> str:
    rows: list[list[str]] = []
    for env in inv.environments:
        rows.append(
            [
                env.name,
                flags_text(inv, env),
                when(env.created),
                human_size(env.used),
                env.kernel or "-",
                env.description,
            ]
        )
        if snapshots:
            for snap in env.snapshots:
                rows.append(
                    [
                        f"  @{snap.name}",
                        "K" if snap.keep else "",
                        when(snap.created),
                        human_size(snap.used),
                        snap.created_by.value,
                        snap.description,
                    ]
                )
    head = (
        f"pool {inv.pool.name} ({inv.pool.health.value}, "
        f"{human_size(inv.pool.free)} free of {human_size(inv.pool.size)})"
    )
    if inv.boot:
        head += f"; /boot of each environment in {inv.boot}"
    body = table(["NAME", "FLAGS", "CREATED", "USED", "KERNEL", "DESCRIPTION"], rows)
    return f"{head}\n{body}\n{FLAG_LEGEND}" + "".join(
        f"\n{line}" for line in pair_notes(inv, snapshots=snapshots)
    )


def pair_notes(inv: Inventory, *, snapshots: bool = True) -> list[str]:
    """What cannot be booted because half of it is missing, and /boot halves with nothing to pair with."""
    out = [f"{e.name}: NOT BOOTABLE, {e.missing_half}" for e in inv.environments if e.missing_half]
    if snapshots:
        out += [
            f"{s.label}: NOT BOOTABLE, {s.missing_half}"
            for e in inv.environments
            if not e.missing_half
            for s in e.snapshots
            if s.missing_half
        ]
    out += [f"{name}: a /boot half without its root half (not used)" for name in inv.orphans]
    return out


def history_text(inv: Inventory, env: BootEnvironment) -> str:
    rows = [
        [str(step), snap.label, when(snap.created), snap.created_by.value, snap.description]
        for step, snap in enumerate(inv.history(env), 1)
    ]
    return f"history of {env.name} (rollback --steps N goes to row N)\n" + table(
        ["STEP", "STATE", "CREATED", "BY", "DESCRIPTION"], rows
    )


def journal_text(entries: Sequence[JournalEntry]) -> str:
    rows = [
        [
            when(e.time),
            e.actor.value,
            e.action,
            e.target,
            e.outcome.value,
            e.detail.splitlines()[0] if e.detail else "",
        ]
        for e in entries
    ]
    return table(["TIME", "BY", "ACTION", "TARGET", "OUTCOME", "DETAIL"], rows)
