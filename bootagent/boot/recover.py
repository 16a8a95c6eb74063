"""The unattended recovery, in the early-boot agent: GRUB counted `recovery.boot_count_limit` failed boots in
a row and started the agent with `bootagent=recover`. The ladder (bootagent.recovery.ladder) decides; this
module persists its state first, marks the environments it gives up on, journals every step with actor
`automatic`, and then boots the chosen environment -- or, at the end of the ladder, shows the manual
intervention screen on every console and waits, with the full menu and no countdown, never rebooting.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol, TextIO

from bootagent.boot.cmdline import BootParams
from bootagent.boot.session import BootDecision, MenuExit, MenuResult, Progress
from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.errors import BootagentError
from bootagent.journal import Journal, Outcome
from bootagent.model import Actor, Prop
from bootagent.names import name_problem
from bootagent.recovery.ladder import (
    Candidate,
    Facts,
    LadderState,
    Policy,
    Step,
    StepKind,
    decide,
    manual_reason,
    refused,
)
from bootagent.recovery.store import RecoveryStore
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan

LOG = logging.getLogger(__name__)

MAX_STEPS = 64  # rungs refused at once (no kernel, ...) before the ladder ends: far more than any pool has


class LadderSession(Protocol):
    def automatic(self, progress: Progress) -> tuple[BootEnvironments, Journal]: ...

    def state_directory(self) -> str: ...

    def boot(self, environment: str) -> BootDecision: ...

    def plan_reset(self, mode: ResetMode, *, actor: Actor = Actor.AGENT, reason: str = "") -> ResetPlan: ...

    def factory_reset(
        self, plan: ResetPlan, progress: Progress, actor: Actor = Actor.AGENT
    ) -> BootDecision: ...


ManualMenu = Callable[[str, str], MenuResult]  # (notice, hint) -> what the person chose


def failing_environment(params: BootParams) -> str | None:
    """The environment GRUB's default path was booting: the last part of root=ZFS=<pool>/<root>/<env>."""
    if not params.root:
        return None
    name = params.root.rsplit("/", 1)[-1]
    return name if name_problem(name) is None else None


def candidates(envs: BootEnvironments) -> list[Candidate]:
    return [
        Candidate(
            e.name,
            e.last_good,
            failed=e.failed is not None,
            # half of a pair (bootagent.pairs) is never a candidate: it would be refused at boot anyway
            bootable=name_problem(e.name) is None and e.missing_half is None,
        )
        for e in envs.inventory().environments
    ]


def _reason(store: RecoveryStore, environment: str | None, since: int) -> str:
    """Why `environment`'s last boot failed, when that boot left a record (a failed required check); a
    kernel that died or a hang leaves none."""
    if environment is None:
        return ""
    record = store.boot()  # every boot that reaches the real root starts one (bootagent-boot-start)
    if record is None or record.environment != environment or record.started < since:
        return "it never reached the real root"
    if record.reason:
        return record.reason
    if record.health == "":
        return "it did not reach its health checks"
    if record.health == "passed":
        return "it passed its health checks but was not marked good"
    return ""


def mark_failed(envs: BootEnvironments, journal: Journal, name: str, why: str, now: int) -> None:
    env = next((e for e in envs.inventory().environments if e.name == name), None)
    if env is None:
        return
    value = f"{now}: {why}"[:200]
    with journal.operation("mark-failed", name, detail=why, data={"dataset": env.dataset, "value": value}):
        envs.zfs.set_user(env.dataset, {Prop.FAILED.value: value})


def describe(step: Step) -> str:
    return f"booting {step.environment}, {step.why}" if step.kind is StepKind.BOOT else step.why


def run_ladder(
    session: LadderSession,
    config: Config,
    params: BootParams,
    console: TextIO,
    manual: ManualMenu,
    *,
    clock: Callable[[], float] = time.time,
) -> MenuResult:
    def progress(msg: str) -> None:
        console.write(f"bootagent: {msg}\r\n")
        console.flush()

    policy = Policy.from_config(config)
    if params.failed:  # what GRUB counted (the image's config may be older than grub.cfg)
        policy = replace(policy, limit=params.failed)
    progress(f"{policy.limit} failed boots in a row: unattended recovery")
    envs, journal = session.automatic(progress)
    store = RecoveryStore(session.state_directory())
    state = store.ladder()
    failing = failing_environment(params)
    now = int(clock())
    since = state.started if state.active else 0
    last = state.attempts[-1].environment if state.attempts else (state.failing or failing)
    reason = _reason(store, last, since)
    for _ in range(MAX_STEPS):
        facts = Facts(failing=failing, candidates=candidates(envs), reason=reason, now=now)
        step, state = decide(state, facts, policy)
        store.save_ladder(state)  # the intent, before anything is done
        for name in step.mark_failed:
            why = reason if name == last and reason else f"failed {policy.limit} boots in a row"
            try:
                mark_failed(envs, journal, name, why, now)
            except BootagentError as exc:
                LOG.error("could not mark %s failed: %s", name, exc.message)
        journal.record("recovery", step.environment or step.kind.value, Outcome.OK, detail=describe(step))
        progress(describe(step))
        if step.kind is StepKind.BOOT and step.environment is not None:
            try:
                return MenuResult(MenuExit.BOOT, session.boot(step.environment))
            except BootagentError as exc:  # no kernel, ...: this rung failed at once
                reason = exc.message
                last = step.environment
                state = refused(state, step.environment, exc.message)
                store.save_ladder(state)
                progress(f"{step.environment} cannot be booted: {exc.message}")
                continue
        if step.kind is StepKind.RESET:  # the last resort: the reset that keeps the customer's data
            try:
                plan = session.plan_reset(
                    ResetMode.KEEP_DATA,
                    actor=Actor.AUTOMATIC,
                    reason=f"the last resort of the unattended recovery ({manual_reason(state)})",
                )
                return MenuResult(MenuExit.BOOT, session.factory_reset(plan, progress, Actor.AUTOMATIC))
            except BootagentError as exc:
                state = replace(state, manual=True)
                store.save_ladder(state)
                journal.record("recovery", "reset-keep-data", Outcome.FAILED, detail=exc.message)
                return stop_here(
                    state, console, params, manual, extra=f"the factory reset failed: {exc.message}"
                )
        return stop_here(state, console, params, manual)
    state = replace(state, manual=True)
    store.save_ladder(state)
    return stop_here(state, console, params, manual)


def recovery_info(state_directory: str, params: BootParams) -> str:
    """For the menu a person opens: the boot counter GRUB passed and the ladder's state, in a line."""
    parts: list[str] = []
    if params.failed:
        parts.append(
            f"boot counter: {params.failed} failed boot(s) in a row"
            + (f" (the unattended recovery starts at {params.limit})" if params.limit else "")
        )
    try:
        store = RecoveryStore(state_directory)
        ladder = store.ladder()
        last = store.last_recovery()
    except OSError as exc:
        LOG.warning("cannot read the recovery state: %s", exc)
        return "; ".join(parts)
    if ladder.unreadable or ladder.manual:
        parts.append("unattended recovery stopped: " + manual_reason(ladder))
    elif ladder.active:
        tried = ", ".join(ladder.tried) or "nothing yet"
        parts.append(
            f"unattended recovery in progress: {ladder.failing} failed {ladder.failures} boots; tried {tried}"
        )
    elif last is not None and not parts:
        parts.append(f"last recovery: {last.describe()}")
    return "; ".join(parts)


def stop_here(
    state: LadderState, console: TextIO, params: BootParams, manual: ManualMenu, *, extra: str = ""
) -> MenuResult:
    why = manual_reason(state) + (f" ({extra})" if extra else "")
    announce(params, console, why)
    return manual(why, "choose an environment to boot, look at the journal (l), or use the shell")


def announce(params: BootParams, console: TextIO, why: str) -> None:
    """The manual-intervention text on every console the kernel writes to, not only the menu's."""
    text = (
        "\r\n*** bootagent: MANUAL INTERVENTION NEEDED ***\r\n"
        f"bootagent: {why}.\r\n"
        "bootagent: nothing more is done automatically and the machine does not reboot by itself.\r\n"
    )
    console.write(text)
    console.flush()
    for name in params.consoles[:-1]:  # the last one is the menu's own (the console above)
        device = "/dev/tty1" if name == "tty0" else f"/dev/{name}"
        if name == params.console or not os.path.exists(device):
            continue
        try:
            with open(device, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(text + f"bootagent: the menu is on the console {params.console}\r\n")
        except OSError as exc:
            LOG.warning("cannot write to %s: %s", device, exc)
