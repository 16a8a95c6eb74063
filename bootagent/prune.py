"""Retention: which checkpoints `prune` removes. Pure planning over the inventory; no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bootagent.model import BootEnvironment, CreatedBy, Snapshot


class PruneReason(StrEnum):
    COUNT = "count"  # beyond keep_count newest prunable checkpoints
    AGE = "age"  # older than max_age_days
    SPACE = "space"  # free space below min_free_percent


@dataclass(frozen=True)
class RetentionPolicy:
    keep_count: int
    max_age_days: int
    min_free_percent: int
    min_keep: int
    prune_created_by: tuple[CreatedBy, ...]


@dataclass(frozen=True)
class PruneItem:
    snapshot: Snapshot
    reason: PruneReason


@dataclass(frozen=True)
class PrunePlan:
    items: tuple[PruneItem, ...]
    free_before: int
    free_after_estimate: int
    size: int
    space_goal_met: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.snapshot.full_name for item in self.items)


def protected_reason(snapshot: Snapshot, policy: RetentionPolicy) -> str | None:
    """Why a snapshot is never pruned, or None when it may be."""
    if snapshot.keep:
        return "keep flag"
    if snapshot.holds:
        return "held (" + ", ".join(sorted(snapshot.holds)) + ")"
    if snapshot.clones:
        return "origin of " + ", ".join(snapshot.clones)
    if snapshot.mounted:
        return "mounted"
    if snapshot.created_by not in policy.prune_created_by:
        return f"created by {snapshot.created_by.value}"
    return None


def plan_prune(
    environments: Iterable[BootEnvironment],
    policy: RetentionPolicy,
    *,
    now: float,
    pool_size: int,
    pool_free: int,
) -> PrunePlan:
    """Which prunable checkpoints to destroy, oldest first.

    Count: at most keep_count prunable checkpoints stay. Age: those older than max_age_days go.
    Space: while free space is below min_free_percent, the oldest remaining ones go. None of the three ever
    takes the newest min_keep prunable checkpoints of an environment, so there is always a recent point to
    roll back to.
    """
    per_env_candidates: list[Snapshot] = []
    all_prunable: list[Snapshot] = []
    for env in environments:
        prunable = [s for s in env.snapshots if protected_reason(s, policy) is None]
        prunable.sort(key=lambda s: s.createtxg)
        all_prunable.extend(prunable)
        # the newest min_keep prunable checkpoints of each environment always stay
        keep_floor = max(policy.min_keep, 1)
        per_env_candidates.extend(prunable[:-keep_floor] if len(prunable) > keep_floor else [])

    # every prunable checkpoint counts toward keep_count, including the per-environment floor
    candidates = sorted(per_env_candidates, key=lambda s: s.createtxg)
    chosen: dict[str, PruneItem] = {}

    excess = max(len(all_prunable) - policy.keep_count, 0)
    for snap in candidates[:excess]:
        chosen[snap.full_name] = PruneItem(snap, PruneReason.COUNT)

    if policy.max_age_days > 0:
        cutoff = now - policy.max_age_days * 86400
        for snap in candidates:
            if snap.created < cutoff and snap.full_name not in chosen:
                chosen[snap.full_name] = PruneItem(snap, PruneReason.AGE)

    free = pool_free + sum(item.snapshot.used for item in chosen.values())
    goal = pool_size * policy.min_free_percent / 100
    for snap in candidates:
        if free >= goal:
            break
        if snap.full_name in chosen:
            continue
        chosen[snap.full_name] = PruneItem(snap, PruneReason.SPACE)
        free += snap.used

    items = tuple(sorted(chosen.values(), key=lambda item: item.snapshot.createtxg))
    return PrunePlan(
        items=items,
        free_before=pool_free,
        free_after_estimate=free,
        size=pool_size,
        space_goal_met=free >= goal,
    )
