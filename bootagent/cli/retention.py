"""`status`'s retention part: when bootagent-prune.timer runs prune next, and what prune would remove now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootagent.cli.context import Context
from bootagent.cli.render import human_size
from bootagent.environments import Inventory
from bootagent.errors import BootagentError

TIMER = "bootagent-prune.timer"


@dataclass
class RetentionStatus:
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def next_run(ctx: Context) -> str | None:
    """The timer's next elapse as systemd prints it; None when it is not scheduled (disabled, no systemd)."""
    try:
        argv = ["systemctl", "show", "--property=NextElapseUSecRealtime", "--value", TIMER]
        done = ctx.recovery(ctx).runner(argv, check=False, timeout=30)
    except BootagentError:
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and text and text != "n/a" else None


def retention_status(ctx: Context, inv: Inventory) -> RetentionStatus:
    plan = ctx.envs.plan_prune(inv)
    when = next_run(ctx)
    status = RetentionStatus()
    status.data = {
        "timer": TIMER,
        "next_run": when,
        "would_remove": [
            {"snapshot": i.snapshot.label, "reason": i.reason.value, "used": i.snapshot.used}
            for i in plan.items
        ],
    }
    schedule = f"next run {when}" if when else f"not scheduled ({TIMER} is not active)"
    status.lines.append(f"prune:           {schedule}; would remove {len(plan.items)} checkpoint(s) now")
    status.lines.extend(
        f"  {i.snapshot.label} ({i.reason.value}, {human_size(i.snapshot.used)})" for i in plan.items
    )
    return status
