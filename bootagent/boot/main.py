"""The early-boot agent: `python3 -m bootagent.boot.main`, run by the initramfs script
`init-premount/bootagent` only when the kernel command line asks for it.

Whatever happens here, the boot goes on: every error is shown and logged, the pool is left exported for
Debian's zfs script, and the exit code tells the shell script what to do next.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import ClassVar, Protocol, TextIO

from bootagent.boot.agent import EarlyBootSession
from bootagent.boot.cmdline import ActionKind, AgentMode, BootParams, CmdlineAction, parse_cmdline
from bootagent.boot.devices import PoolDevice, wait_for_pool_devices
from bootagent.boot.recover import announce, recovery_info, run_ladder
from bootagent.boot.session import BootDecision, MenuExit, MenuResult, Progress, RecoverySession
from bootagent.config import Config, load_config
from bootagent.environments import BootEnvironments
from bootagent.errors import BootagentError
from bootagent.journal import Journal
from bootagent.model import Actor
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan
from bootagent.reset.store import ResetStore, UnreadableState
from bootagent.runner import Runner, run

LOG = logging.getLogger("bootagent.boot")

DEVICE_TIMEOUT = 30.0


class Exit(IntEnum):
    CONTINUE = 0  # go on with the normal boot (a ROOT= may have been written to /conf/param.conf)
    SHELL = 100  # the operator asked for the recovery shell; the script runs it, then the boot continues
    REBOOT = 101
    POWEROFF = 102


class AgentSession(RecoverySession, Protocol):
    """A RecoverySession that also owns the pool's import state (EarlyBootSession), and what the unattended
    recovery needs (the pool read-write, the state directory)."""

    def automatic(self, progress: Progress) -> tuple[BootEnvironments, Journal]: ...

    def state_directory(self) -> str: ...

    def open_readonly(self) -> None: ...

    def close(self) -> None: ...

    def hand_over(self, decision: BootDecision) -> None: ...

    def boot_own_kernel(self, decision: BootDecision) -> None: ...

    def plan_reset(
        self,
        mode: ResetMode,
        *,
        actor: Actor = Actor.AGENT,
        reason: str = "",
        secure: bool = False,
        release: str | None = None,
    ) -> ResetPlan: ...

    def factory_reset(
        self, plan: ResetPlan, progress: Progress, actor: Actor = Actor.AGENT
    ) -> BootDecision: ...

    def resume_reset(self, progress: Progress) -> BootDecision | None: ...

    def reset_store(self) -> ResetStore: ...

    def clear_reset_flag(self, progress: Progress) -> None: ...


class KmsgHandler(logging.Handler):
    """Levelled lines into the kernel log, so they land in the journal of the booted system."""

    LEVELS: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def __init__(self, path: str = "/dev/kmsg") -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = self.LEVELS.get(record.levelno, 6)
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(f"<{level}>bootagent: {self.format(record)}\n")
        except OSError:
            pass


def setup_logging(params: BootParams, console: TextIO) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if params.debug else logging.INFO)
    kmsg = KmsgHandler()
    kmsg.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(kmsg)
    screen = logging.StreamHandler(console)
    screen.setLevel(logging.DEBUG if params.debug else logging.WARNING)
    screen.setFormatter(logging.Formatter("bootagent: %(levelname)s: %(message)s"))
    root.addHandler(screen)


def say(console: TextIO, text: str) -> None:
    console.write(text + "\r\n" if not text.endswith("\n") else text)
    console.flush()


def unattended(session: AgentSession, action: CmdlineAction, console: TextIO) -> BootDecision:
    """Carry out an action named on the kernel command line (no person: no destructive variants)."""

    def progress(msg: str) -> None:
        say(console, f"bootagent: {msg}")

    inv = session.inventory()
    if action.kind is ActionKind.BOOT:
        return session.boot(action.target or "")
    if action.kind is ActionKind.BOOT_SNAPSHOT:
        return session.boot_snapshot(action.target or "", progress)
    if action.kind is ActionKind.RESET_KEEP_DATA:  # unattended: only ever the mode that keeps the data
        plan = session.plan_reset(
            ResetMode.KEEP_DATA, actor=Actor.AUTOMATIC, reason="bootagent.action on the kernel command line"
        )
        return session.factory_reset(plan, progress, Actor.AUTOMATIC)
    current = session.default_environment() or inv.current().name
    if action.kind is ActionKind.ROLLBACK:
        result = session.rollback(current, steps=action.steps, destructive=False, progress=progress)
        return session.boot(result.environment)
    forward = session.roll_forward(current, steps=None, progress=progress)
    return session.boot(forward.environment)


def interactive(session: AgentSession, config: Config, params: BootParams, notice: str = "") -> MenuResult:
    """The menu; with a notice, the manual-intervention form of it (no countdown); opened on a reset's
    confirmation when GRUB's reset entry started the agent."""
    from bootagent.tui.launch import run_interactive

    hint = "choose an environment to boot, look at the journal (l), or use the shell" if notice else ""
    info = "" if notice else recovery_info(session.state_directory(), params)
    start = params.reset if params.mode is AgentMode.RESET and params.reset in PERSON_RESETS else ""
    return run_interactive(
        session, config, params, notice=notice, notice_hint=hint, info=info, start_reset=start or ""
    )


PERSON_RESETS = (ResetMode.KEEP_DATA.value, ResetMode.ERASE_ALL.value)


def reset_first(
    session: AgentSession,
    config: Config,
    params: BootParams,
    console: TextIO,
    menu: Callable[[AgentSession, Config, BootParams, str], MenuResult],
) -> MenuResult | None:
    """Before anything else: a reset under way is carried on, one asked for from the running system is
    carried out (both were confirmed already); a state that cannot be read stops here for a person."""

    def progress(msg: str) -> None:
        say(console, f"bootagent: {msg}")

    store = session.reset_store()
    try:
        plan = store.plan()
        request = store.request() if plan is None else None
    except UnreadableState as exc:
        why = f"the factory reset's state cannot be read ({exc}); nothing more is done automatically"
        announce(params, console, why)
        return menu(session, config, params, why)
    if plan is not None:
        decision = session.resume_reset(progress)
        return MenuResult(MenuExit.BOOT, decision) if decision is not None else None
    if request is not None:
        progress(
            f"a factory reset ({request.mode.value}) was asked for from the running system "
            f"(by {request.requested_by or 'someone'}): carrying it out"
        )
        actor = Actor.AUTOMATIC if request.requested_by == Actor.AUTOMATIC.value else Actor.CLI
        new = session.plan_reset(
            request.mode,
            actor=actor,
            reason="asked for with bootagent factory-reset",
            secure=request.secure,
            release=request.baseline,
        )
        return MenuResult(MenuExit.BOOT, session.factory_reset(new, progress, actor))
    if params.mode is AgentMode.RESET and params.reset == "resume":
        progress("GRUB says a factory reset is under way, but nothing is left to do: clearing that")
        session.clear_reset_flag(progress)
    return None


def reset_under_way(session: AgentSession) -> str | None:
    """Why booting on would boot a half-reset system, or None."""
    try:
        plan = session.reset_store().plan()
    except UnreadableState as exc:
        return f"the factory reset's state cannot be read ({exc})"
    except Exception:  # no state directory at all: nothing can be under way
        return None
    if plan is None:
        return None
    return f"the factory reset ({plan.mode.value}) stopped after step {plan.done} of {len(plan.steps)}"


def run_agent(
    params: BootParams,
    config: Config,
    console: TextIO,
    *,
    runner: Runner = run,
    session_factory: Callable[[str], AgentSession] | None = None,
    menu: Callable[[AgentSession, Config, BootParams, str], MenuResult] = interactive,
    wait: Callable[..., list[PoolDevice]] = wait_for_pool_devices,
    stdin: TextIO | None = None,
) -> Exit:
    pool = params.pool or config.pool
    if pool is None:
        say(console, "bootagent: no pool named (root=ZFS=... or 'pool:' in the config); normal boot")
        return Exit.CONTINUE
    runner(["modprobe", "zfs"], check=False, timeout=120)
    while True:
        devices = wait(pool, timeout=DEVICE_TIMEOUT, progress=lambda m: say(console, f"bootagent: {m}"))
        if devices:
            break
        say(console, f"bootagent: the devices of pool {pool} did not appear in {DEVICE_TIMEOUT:.0f} s.")
        if params.mode not in (AgentMode.MENU, AgentMode.RECOVER):  # recover: booting on would fail again
            return Exit.CONTINUE
        offer = "[r]etry, [c]ontinue the normal boot" + (", [s]hell" if config.console.allow_shell else "")
        choice = ask(console, offer, stdin)
        if choice == "s" and config.console.allow_shell:
            return Exit.SHELL
        if choice != "r":
            return Exit.CONTINUE
    LOG.info("pool %s devices: %s", pool, ", ".join(d.node for d in devices))
    factory = session_factory or (lambda p: EarlyBootSession(params, config, p, runner=runner))
    session = factory(pool)
    try:
        session.open_readonly()
        LOG.info("pool %s imported read-only", pool)
        reset = reset_first(session, config, params, console, menu)
        if reset is not None:
            result = reset
        elif params.mode is AgentMode.RESET and params.reset not in PERSON_RESETS:
            default = session.default_environment()
            if default is None:
                result = menu(session, config, params, "")
            else:
                result = MenuResult(MenuExit.BOOT, session.boot(default))
        elif params.action is not None:
            decision = unattended(session, params.action, console)
            result = MenuResult(MenuExit.BOOT, decision)
        elif params.mode is AgentMode.RECOVER:
            result = run_ladder(
                session, config, params, console, lambda notice, _hint: menu(session, config, params, notice)
            )
        elif params.mode in (AgentMode.MENU, AgentMode.RESET):
            result = menu(session, config, params, "")
        else:
            session.close()
            return Exit.CONTINUE
        if result.exit is MenuExit.RESET and result.reset is not None:
            say(
                console,
                f"bootagent: factory reset ({result.reset.mode.value}) to baseline {result.reset.baseline}",
            )
            decision = session.factory_reset(result.reset, lambda msg: say(console, f"bootagent: {msg}"))
            result = MenuResult(MenuExit.BOOT, decision)
        if result.exit is MenuExit.BOOT and result.decision is not None:
            say(console, f"bootagent: booting {result.decision.environment}")
            if result.decision.needs_own_kernel:
                say(console, f"bootagent: starting its own kernel {result.decision.kernel}")
                session.boot_own_kernel(result.decision)
            session.hand_over(result.decision)
            return Exit.CONTINUE
        session.close()
        exits = {MenuExit.SHELL: Exit.SHELL, MenuExit.REBOOT: Exit.REBOOT, MenuExit.POWEROFF: Exit.POWEROFF}
        return exits.get(result.exit, Exit.CONTINUE)
    except BootagentError as exc:
        LOG.error("%s", exc.message)
        say(console, f"bootagent: error: {exc.message}" + (f"\r\nhint: {exc.hint}" if exc.hint else ""))
    except Exception:  # the boot must go on whatever the agent did
        LOG.exception("the boot agent failed")
        say(console, "bootagent: internal error; continuing the normal boot")
    half_reset = reset_under_way(session)
    session.close()
    if half_reset is not None:
        # booting on would boot a half-reset system; rebooting would only stop here again
        announce(params, console, half_reset + ": rebooting carries it on")
        return Exit.SHELL
    if params.mode is AgentMode.RECOVER:
        # booting on would only fail again and count nothing new: stop here for a person, never reboot
        say(console, "bootagent: the unattended recovery failed: manual intervention needed (a shell)")
        return Exit.SHELL
    return Exit.CONTINUE


def ask(console: TextIO, prompt: str, stdin: TextIO | None = None) -> str:
    say(console, prompt + ": ")
    line = (stdin or sys.stdin).readline()
    return line.strip().lower()[:1]


def main(argv: list[str] | None = None) -> int:
    """Never raises: whatever fails, the boot goes on (exit 0) after saying why."""
    try:
        return _main()
    except Exception as exc:
        sys.stdout.write(
            f"bootagent: internal error ({type(exc).__name__}: {exc}); continuing the normal boot\r\n"
        )
        logging.getLogger("bootagent.boot").exception("the boot agent failed")
        return int(Exit.CONTINUE)


def _main() -> int:
    started = time.monotonic()
    cmdline_path = os.environ.get("BOOTAGENT_CMDLINE", "/proc/cmdline")
    try:
        params = parse_cmdline(Path(cmdline_path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return int(Exit.CONTINUE)
    if params.mode is AgentMode.OFF or params.kexeced:
        return int(Exit.CONTINUE)
    console = sys.stdout
    if params.serial_console and os.environ.get("TERM", "linux") == "linux":
        # the kernel says TERM=linux on every console; a serial line is a vt220 at best (and a
        # terminal emulator on the other end of IPMI serial-over-LAN understands that too)
        os.environ["TERM"] = "vt220"
    setup_logging(params, console)
    for problem in params.problems:
        LOG.warning("kernel command line: %s", problem)
    config = load_config(None, strict=False).config  # problems are logged by load_config; never fatal
    # at INFO: with the kernel's timestamps in the log, these lines time each step from the script's
    # "starting the agent" to the drawn menu (benchmarks/boot_path.py reads them)
    LOG.info("agent ready after %.2f s in Python", time.monotonic() - started)
    return int(run_agent(params, config, console))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
