"""What `bootagent status` says about boot counting and unattended recovery: the counter, a ladder in
progress, the last recovery, this boot's record, and the wiring (a counter nothing clears would send a
healthy machine into recovery after N ordinary reboots)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bootagent.errors import BootagentError
from bootagent.recovery.counter import BootCount
from bootagent.recovery.ladder import manual_reason
from bootagent.recovery.store import RecoveryStore

if TYPE_CHECKING:
    from bootagent.cli.context import Context

BLESS_UNIT = "bootagent-bless.service"
WIRED_UNITS = ("bootagent-boot-start.service", "bootagent-health.service", BLESS_UNIT)
WIRED = ("enabled", "static", "enabled-runtime", "alias", "indirect")  # `systemctl is-enabled` says it runs


@dataclass
class RecoveryStatus:
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def unit_states(ctx: Context) -> dict[str, str]:
    """`systemctl is-enabled` of the package's units ("unknown" where systemd cannot say)."""
    system = ctx.recovery(ctx)
    out: dict[str, str] = {}
    for unit in WIRED_UNITS:
        try:
            done = system.runner(["systemctl", "is-enabled", unit], check=False, timeout=30)
            out[unit] = done.stdout.strip() or done.stderr.strip() or "unknown"
        except BootagentError:
            out[unit] = "unknown"
    return out


def recovery_status(ctx: Context) -> RecoveryStatus:
    status = RecoveryStatus()
    system = ctx.recovery(ctx)
    limit = ctx.config.recovery.boot_count_limit
    raw, sound = system.boot.counter()
    count = BootCount(raw, limit)
    store = RecoveryStore(ctx.journal.directory)
    ladder = store.ladder()
    last = store.last_recovery()
    record = system.record()
    units = unit_states(ctx)
    dog = system.watchdog.present()
    status.data = {
        "tries": count.tries,
        "limit": limit,
        "grubenv_sound": sound,
        "ladder": None
        if not ladder.active
        else {**asdict(ladder), "summary": manual_reason(ladder) if ladder.manual else ""},
        "last_recovery": None if last is None else {**asdict(last), "summary": last.describe()},
        "this_boot": None if record is None else asdict(record),
        "units": units,
        "watchdog": dog,
    }
    status.lines.append(f"boot counter:    {count.describe()}")
    if record is not None:
        verdict = {"passed": "passed", "failed": f"FAILED ({record.reason})", "": "not run yet"}
        status.lines.append(f"health checks:   {verdict.get(record.health, record.health)}")
        if record.repaired:
            status.lines.append(f"repaired:        {record.repaired} (at the start of this boot)")
    if ladder.active:
        where = (
            manual_reason(ladder)
            if ladder.manual
            else (
                f"{ladder.failing} failed {ladder.failures} boots; "
                f"tried: {', '.join(ladder.tried) or 'nothing yet'}"
            )
        )
        status.lines.append(f"recovery:        in progress: {where}")
    if last is not None:
        from bootagent.cli.render import when

        status.lines.append(f"last recovery:   {when(last.time)}: {last.describe()}")
    if units.get(BLESS_UNIT) not in WIRED:
        status.lines.append(
            f"warning: GRUB counts every boot but {BLESS_UNIT} is {units.get(BLESS_UNIT)}: nothing marks a "
            f"boot good, so after {limit} ordinary boots the machine starts the unattended recovery "
            f"(hint: systemctl enable {BLESS_UNIT})"
        )
    for unit in WIRED_UNITS[:2]:
        if units.get(unit) not in (*WIRED, "unknown"):
            status.lines.append(f"warning: {unit} is {units.get(unit)} (hint: systemctl enable {unit})")
    if ctx.config.recovery.boot_timeout > 0 and not dog:
        status.lines.append(
            "warning: no watchdog device (/dev/watchdog0): a boot that hangs before its health checks "
            "pass is not reset (recovery.boot_timeout)"
        )
    return status
