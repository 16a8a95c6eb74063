"""`bootagent factory seal|list` and `bootagent factory-reset`: the factory baselines and a reset scheduled
for the next boot, from the running system. The reset itself always runs in the early-boot agent (no
environment is in use there); from here it is planned, shown, confirmed and asked for."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bootagent.cli.context import Context
from bootagent.cli.render import human_size, when
from bootagent.errors import RefusedError
from bootagent.model import Actor
from bootagent.reset.mode import ResetMode
from bootagent.reset.store import ResetRequest, ResetStore, UnreadableState
from bootagent.runner import Runner

# The reset engine (baselines, planning, the run) is imported where a verb needs it: every boot's
# boot-start and bless come through this module and need only the reset's stored state.
if TYPE_CHECKING:
    from bootagent.reset.baseline import Baseline

WORDS = {ResetMode.KEEP_DATA: "RESET", ResetMode.ERASE_ALL: "ERASE"}


@dataclass(frozen=True)
class Result:
    data: dict[str, Any]
    text: str


def _baseline_json(b: Baseline) -> dict[str, Any]:
    return {
        "release": b.release,
        "system": b.system,
        "configs": [snap for _, snap in b.configs],
        "sealed": b.sealed,
        "kernel": b.kernel,
        "size": b.size,
        "complete": b.complete,
        "problem": b.problem,
    }


def _baseline_line(b: Baseline) -> str:
    state = "complete" if b.complete else f"INCOMPLETE: {b.problem}"
    return f"{b.release:<16} sealed {when(b.sealed)}  {human_size(b.size):>8}  {b.system}  ({state})"


def list_baselines(ctx: Context) -> Result:
    from bootagent.reset.baseline import baselines

    found = baselines(ctx.zfs, ctx.config, ctx.pool)
    text = (
        "\n".join(_baseline_line(b) for b in found)
        if found
        else ("no factory baseline: seal one with 'bootagent factory seal' on a freshly installed system")
    )
    return Result({"baselines": [_baseline_json(b) for b in found]}, text)


def default_release() -> str:
    """The OS release and today's date, e.g. 12-20261202 (a name the name rule allows)."""
    version = "unknown"
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_ID":
                    version = value.strip('"') or version
    except OSError:
        pass
    return f"{version}-{time.strftime('%Y%m%d', time.gmtime())}"


def seal_baseline(ctx: Context, environment: str | None, release: str | None, replace: bool) -> Result:
    from bootagent.reset.baseline import seal
    from bootagent.reset.service import refuse_pairs

    refuse_pairs(ctx.zfs, ctx.config, ctx.pool)
    inv = ctx.envs.inventory()
    env = inv.find(environment) if environment else inv.current()
    found = seal(
        ctx.zfs,
        ctx.config,
        ctx.pool,
        ctx.journal,
        environment=env.dataset,
        release=release or default_release(),
        kernel=env.kernel or os.uname().release,
        replace=replace,
    )
    configs = ", ".join(ds for ds, _ in found.configs) or "no config datasets"
    return Result(
        _baseline_json(found),
        f"sealed factory baseline {found.release} from {env.name} (and {configs}): {found.system}",
    )


def plan_text(ctx: Context, mode: ResetMode, release: str | None, secure: bool) -> tuple[list[str], str]:
    from bootagent.reset.plan import summary
    from bootagent.reset.service import prepare

    plan = prepare(ctx.zfs, ctx.config, ctx.pool, mode, release=release, actor=Actor.CLI.value, secure=secure)
    head = (
        f"factory reset ({mode.value}) to baseline {plan.baseline}, at the next boot; "
        f"the new boot environment will be {plan.new_environment}:"
    )
    return [head, *("  " + line for line in summary(plan))], plan.baseline


def schedule(
    ctx: Context,
    mode: ResetMode,
    planned: tuple[list[str], str],
    *,
    release: str | None,
    secure: bool,
    actor: Actor,
) -> Result:
    """Write the request (state dataset) and the GRUB flag; the agent carries it out at the next boot.
    `planned` is what plan_text showed (the agent plans again at boot, from the pool as it is then)."""
    store = ResetStore(str(ctx.journal.directory))
    try:
        under_way = store.plan()
    except UnreadableState as exc:
        raise RefusedError(f"the state of an earlier reset cannot be read: {exc}") from None
    if under_way is not None:
        raise RefusedError(
            f"a factory reset ({under_way.mode.value}) is under way already; reboot to let it finish"
        )
    lines, baseline = planned
    request = ResetRequest(mode, release, secure, actor.value, int(time.time()))
    with ctx.journal.operation("factory-reset-request", mode.value, data={"baseline": baseline}):
        store.save_request(request)
        ctx.envs.boot.set_reset(mode.value)
    return Result(
        {"mode": mode.value, "baseline": baseline, "secure": secure, "plan": lines[1:]},
        "\n".join([*lines, "", "asked for: the early-boot agent carries it out at the next boot"]),
    )


def cancel(ctx: Context) -> Result:
    from bootagent.reset.run import set_flag

    store = ResetStore(str(ctx.journal.directory))
    if store.plan() is not None:
        raise RefusedError("the reset has begun already (a plan is under way); it cannot be cancelled now")
    request = store.request()
    with ctx.journal.operation("factory-reset-cancel", request.mode.value if request else "-"):
        store.clear_request()
        set_flag(ctx.envs.boot, None)
    return Result({"cancelled": request is not None}, "no factory reset is asked for any more")


def reset_status(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    from bootagent.reset.baseline import baselines

    store = ResetStore(str(ctx.journal.directory))
    lines: list[str] = []
    data: dict[str, Any] = {}
    try:
        history = store.history()
        request = store.request()
        plan = store.plan()
    except UnreadableState as exc:
        return {"error": str(exc)}, [f"warning: factory reset state: {exc}"]
    data["count"] = history.count
    data["last"] = history.last
    data["requested"] = request.mode.value if request else None
    data["under_way"] = f"{plan.mode.value} {plan.done}/{len(plan.steps)}" if plan else None
    found = baselines(ctx.zfs, ctx.config, ctx.pool)
    data["baselines"] = [b.release for b in found if b.complete]
    lines.append(
        f"factory resets:  {history.count}"
        + (f" (last: {history.last})" if history.last else "")
        + f"; baselines: {', '.join(data['baselines']) or 'none'}"
    )
    if request:
        lines.append(
            f"warning: a factory reset ({request.mode.value}) is asked for: it runs at the next boot"
        )
    if plan:
        lines.append(f"warning: a factory reset ({plan.mode.value}) is under way ({data['under_way']} steps)")
    return data, lines


def at_boot_start(ctx: Context, runner: Runner, warn: Callable[[str], None]) -> str:
    """Early in every boot of the real root. A reset under way means this root was booted around the agent
    (GRUB bypassed, its flag lost): never run a half-reset system -- set the flag again and reboot into the
    agent, and the second time stop in the emergency shell for a person."""
    store = ResetStore(str(ctx.journal.directory))
    try:
        plan = store.plan()
        unreadable = ""
    except UnreadableState as exc:
        plan, unreadable = None, str(exc)
    if plan is not None or unreadable:
        what = (
            f"a factory reset ({plan.mode.value}) is under way"
            if plan
            else f"unreadable reset state ({unreadable})"
        )
        marker = store.dir / f"booted-around-{plan.op if plan else 'unreadable'}"
        if marker.exists():
            warn(f"{what} and this system booted without the agent again: stopping for a person")
            runner(["systemctl", "--no-block", "emergency"], check=False, timeout=60)
            raise RefusedError(f"{what}: this system must not run until the reset is finished")
        marker.write_text("1\n")
        if plan is not None:
            from bootagent.reset.run import set_flag

            set_flag(ctx.envs.boot, plan.mode)
        warn(f"{what} but this system booted without the agent: rebooting into the agent to finish it")
        runner(["systemctl", "--no-block", "reboot"], check=False, timeout=60)
        raise RefusedError(f"{what}: rebooting into the agent to finish it")
    return ""


def after_reset(ctx: Context, warn: Callable[[str], None]) -> str:
    """At the first good boot after a reset (bless: every file system is mounted, /boot/grub too), GRUB's
    menu still lists the environments the reset removed: regenerate it, once per reset."""
    store = ResetStore(str(ctx.journal.directory))
    last = store.last_plan()
    if last is None:
        return ""
    marker = store.dir / f"grub-refreshed-{last.op}"
    if marker.exists():
        return ""
    refreshed = ctx.menu.refresh()
    if refreshed.warning:
        warn(refreshed.warning)
    marker.write_text("1\n")
    return (
        f"after the factory reset ({last.mode.value}) GRUB's menu was regenerated"
        if refreshed.updated
        else ""
    )
