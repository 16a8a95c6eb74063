"""The early-boot flow: devices, read-only first, unattended actions, menu results, the hand-over, and that
every path leaves the pool closed and the boot going on."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bootagent.boot.cmdline import BootParams, parse_cmdline
from bootagent.boot.devices import PoolDevice
from bootagent.boot.main import AgentSession, Exit, main, run_agent
from bootagent.boot.session import BootDecision, MenuExit, MenuResult, Progress
from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.environments import BootEnvironments, Inventory, RollbackResult, RollForwardResult
from bootagent.errors import RefusedError
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal, JournalEntry
from bootagent.model import Actor
from bootagent.reset.baseline import seal
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan
from bootagent.reset.run import ResetTarget, set_flag
from bootagent.reset.service import prepare, resume, start
from bootagent.reset.store import ResetStore
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, reference_pool


class FakeSession:
    """An AgentSession over the in-memory pool, recording the import/hand-over life cycle."""

    def __init__(self, tmp: Path, *, fail: Exception | None = None) -> None:
        self.zfs: FakeZfs = reference_pool()
        del self.zfs.mounted["/"]  # early boot: nothing is mounted
        (tmp / "grub").mkdir(exist_ok=True)
        self.envs = BootEnvironments(
            self.zfs,
            Config(pool="rpool"),
            "rpool",
            Journal(tmp / "state", actor=Actor.AGENT),
            BootStore(self.zfs, GrubenvFile(tmp / "grub/grubenv")),
        )
        self.events: list[str] = []
        self.fail = fail
        self.tmp = tmp

    def automatic(self, progress: Progress) -> tuple[BootEnvironments, Journal]:
        self.events.append("automatic")
        return self.envs, Journal(self.tmp / "state", actor=Actor.AUTOMATIC)

    def state_directory(self) -> str:
        return str(self.tmp / "state")

    def open_readonly(self) -> None:
        self.events.append("open")

    def close(self) -> None:
        self.events.append("close")

    def hand_over(self, decision: BootDecision) -> None:
        self.events.append(f"hand_over {decision.dataset}")

    def boot_own_kernel(self, decision: BootDecision) -> None:
        self.events.append(f"kexec {decision.kernel}")

    def inventory(self) -> Inventory:
        return self.envs.inventory()

    def default_environment(self) -> str | None:
        return self.inventory().state.active

    def journal(self, limit: int) -> Sequence[JournalEntry]:
        return self.envs.journal.entries(limit)

    def boot(self, environment: str) -> BootDecision:
        if self.fail:
            raise self.fail
        env = self.inventory().find(environment)
        return BootDecision(env.name, env.dataset, env.kernel, env.kernel != "6.1.0-30-amd64")

    def boot_snapshot(self, snapshot: str, progress: Progress) -> BootDecision:
        self.events.append(f"boot_snapshot {snapshot}")
        env = self.envs.create(snapshot.replace("@", "-"), snapshot)
        return self.boot(env.name)

    def rollback(
        self, environment: str, *, steps: int | None, destructive: bool, progress: Progress
    ) -> RollbackResult:
        self.events.append(f"rollback {environment} {steps} {destructive}")
        return self.envs.rollback(environment, steps=steps, destructive=destructive)

    def roll_forward(self, environment: str, *, steps: int | None, progress: Progress) -> RollForwardResult:
        self.events.append(f"roll_forward {environment}")
        return self.envs.roll_forward(environment, steps=steps)

    # --- the factory reset, over the real reset code and the in-memory pool ----------------------------
    def seal(self) -> None:
        seal(
            self.zfs,
            self.envs.config,
            "rpool",
            self.envs.journal,
            environment="rpool/ROOT/alpha",
            release="r1",
            kernel="6.1.0-30-amd64",
        )

    def reset_store(self) -> ResetStore:
        return ResetStore(self.state_directory())

    def _target(self, progress: Progress, actor: Actor) -> ResetTarget:
        return ResetTarget(
            self.zfs,
            self.envs.boot,
            Journal(self.tmp / "state", actor=actor),
            self.state_directory(),
            progress=progress,
        )

    def plan_reset(
        self,
        mode: ResetMode,
        *,
        actor: Actor = Actor.AGENT,
        reason: str = "",
        secure: bool = False,
        release: str | None = None,
    ) -> ResetPlan:
        self.events.append(f"plan_reset {mode.value} {actor.value}")
        return prepare(
            self.zfs,
            self.envs.config,
            "rpool",
            mode,
            release=release,
            actor=actor.value,
            secure=secure,
            reason=reason,
        )

    def factory_reset(self, plan: ResetPlan, progress: Progress, actor: Actor = Actor.AGENT) -> BootDecision:
        self.events.append(f"factory_reset {plan.mode.value}")
        start(self._target(progress, actor), plan)
        return self.boot(plan.new_environment)

    def resume_reset(self, progress: Progress) -> BootDecision | None:
        self.events.append("resume_reset")
        plan = resume(self._target(progress, Actor.AUTOMATIC))
        return self.boot(plan.new_environment) if plan is not None else None

    def clear_reset_flag(self, progress: Progress) -> None:
        self.events.append("clear_reset_flag")
        set_flag(self.envs.boot, None)


def runner(argv: Sequence[str], **_: Any) -> CommandResult:
    return CommandResult(tuple(argv), 0, "", "")


def devices(found: list[list[PoolDevice]]) -> Any:
    def wait(pool: str | None, **_: Any) -> list[PoolDevice]:
        return found.pop(0) if found else []

    return wait


DEV = [PoolDevice("/dev/vda3", "rpool", "1")]


def agent(
    params: BootParams, session: FakeSession, *, menu: Any = None, found: Any = None, stdin: str = ""
) -> tuple[Exit, str]:
    console = io.StringIO()
    code = run_agent(
        params,
        Config(),
        console,
        runner=runner,
        session_factory=lambda _pool: session,
        menu=menu or (lambda *_: pytest.fail("no menu expected")),
        wait=devices(found if found is not None else [DEV]),
        stdin=io.StringIO(stdin),
    )
    return code, console.getvalue()


def check_protocol(session: FakeSession) -> AgentSession:
    return session


def test_menu_boot_hands_over_with_the_pool_closed(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    check_protocol(session)
    decision = BootDecision("alpha", "rpool/ROOT/alpha", "6.1.0-30-amd64", False)
    code, out = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=menu"),
        session,
        menu=lambda *_: MenuResult(MenuExit.BOOT, decision),
    )
    assert code is Exit.CONTINUE
    assert session.events == ["open", "hand_over rpool/ROOT/alpha"]
    assert "booting alpha" in out


def test_other_kernel_is_kexeced(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    code, _ = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=boot:gamma"), session)
    assert code is Exit.CONTINUE
    assert session.events == ["open", "kexec 6.12.0-1-amd64", "hand_over rpool/ROOT/gamma"]


def test_unattended_rollback_two_steps(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=rollback:2"), session)
    assert session.events == ["open", "rollback beta 2 False", "hand_over rpool/ROOT/beta-s2"]
    assert session.zfs.bootfs == "rpool/ROOT/beta-s2"


def test_unattended_boot_snapshot_leaves_the_snapshot(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    before = dict(session.zfs.nodes["rpool/ROOT/beta@s1"].__dict__)
    agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=boot-snapshot:beta@s1"), session)
    assert session.events[-1] == "hand_over rpool/ROOT/beta-s1"
    assert session.zfs.nodes["rpool/ROOT/beta@s1"].__dict__ == before


@pytest.mark.parametrize(("exit_", "code"), [(MenuExit.SHELL, Exit.SHELL), (MenuExit.REBOOT, Exit.REBOOT)])
def test_menu_exits_close_the_pool(tmp_path: Path, exit_: MenuExit, code: Exit) -> None:
    session = FakeSession(tmp_path)
    result, _ = agent(parse_cmdline("bootagent=menu rpool=rpool"), session, menu=lambda *_: MenuResult(exit_))
    assert result is code
    assert session.events == ["open", "close"]


def test_errors_are_shown_and_the_boot_goes_on(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, fail=RefusedError("gamma has no bootable kernel", hint="choose another"))
    code, out = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=boot:gamma"), session)
    assert code is Exit.CONTINUE
    assert "error: gamma has no bootable kernel" in out
    assert "hint: choose another" in out
    assert session.events == ["open", "close"]


def test_bugs_never_block_the_boot(tmp_path: Path) -> None:
    session = FakeSession(tmp_path, fail=ZeroDivisionError("bug"))
    code, out = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=boot:alpha"), session)
    assert code is Exit.CONTINUE
    assert "internal error; continuing the normal boot" in out
    assert session.events == ["open", "close"]


def test_missing_devices_offer_retry_then_shell(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    code, out = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=menu"), session, found=[[], []], stdin="r\ns\n"
    )
    assert code is Exit.SHELL
    assert out.count("did not appear") == 2
    assert "[r]etry, [c]ontinue the normal boot, [s]hell" in out
    assert session.events == []


def test_missing_devices_unattended_continue(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    code, _ = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=boot:alpha"), session, found=[[]]
    )
    assert code is Exit.CONTINUE
    assert session.events == []


def test_no_pool_named_continues(tmp_path: Path) -> None:
    code, out = agent(parse_cmdline("root=zfs:AUTO bootagent=menu"), FakeSession(tmp_path))
    assert code is Exit.CONTINUE
    assert "no pool named" in out


def test_main_is_silent_and_instant_without_the_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=ZFS=rpool/ROOT/beta ro quiet\n")
    monkeypatch.setenv("BOOTAGENT_CMDLINE", str(cmdline))
    assert main() == 0


def test_main_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=ZFS=rpool/ROOT/beta bootagent=menu\n")
    monkeypatch.setenv("BOOTAGENT_CMDLINE", str(cmdline))

    def broken(*_: object, **__: object) -> None:
        raise LookupError("unknown encoding: utf-8-sig")

    monkeypatch.setattr("bootagent.boot.main.load_config", broken)
    assert main() == 0
    assert "internal error (LookupError: unknown encoding: utf-8-sig); continuing the normal boot" in (
        capsys.readouterr().out
    )


# --- the factory reset at boot -----------------------------------------------------------------------------
def test_a_reset_asked_for_from_the_running_system_runs_before_anything_else(tmp_path: Path) -> None:
    from bootagent.reset.store import ResetRequest

    session = FakeSession(tmp_path)
    session.seal()
    ResetStore(session.state_directory()).save_request(
        ResetRequest(ResetMode.KEEP_DATA, None, False, "cli", 1)
    )
    code, out = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=reset bootagent.reset=resume"), session
    )
    assert code is Exit.CONTINUE
    assert "was asked for from the running system (by cli)" in out
    assert "plan_reset keep-data cli" in session.events
    (handed,) = [e for e in session.events if e.startswith("hand_over")]
    assert session.zfs.nodes[handed.removeprefix("hand_over ")].origin == "rpool/FACTORY/r1/system@factory"
    assert ResetStore(session.state_directory()).request() is None


def test_a_reset_cut_short_is_carried_on_whatever_the_entry(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.seal()
    plan = session.plan_reset(ResetMode.ERASE_ALL)
    target = session._target(lambda _m: None, Actor.AGENT)

    class Cut(Exception):
        pass

    def cut(p: ResetPlan) -> None:
        if p.done == 2:
            raise Cut

    target.after_step = cut
    with pytest.raises(Cut):
        start(target, plan)
    # the menu entry, not a reset one: the reset under way comes first
    code, out = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=menu"), session)
    assert code is Exit.CONTINUE
    assert "was interrupted after step 2" in out
    assert session.events[-1] == f"hand_over {plan.new_dataset}"
    assert sorted(n for n in session.zfs.nodes if n.startswith("rpool/ROOT/")) == [plan.new_dataset]


def test_a_reset_that_fails_stops_at_a_shell_instead_of_booting_half_reset(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.seal()
    plan = session.plan_reset(ResetMode.ERASE_ALL)
    session.zfs.fail_next["destroy"] = RefusedError("the disk said no")
    code, out = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=reset bootagent.reset=erase-all"),
        session,
        menu=lambda *_: MenuResult(MenuExit.RESET, reset=plan),  # the menu's typed word was right
    )
    assert code is Exit.SHELL
    assert "the disk said no" in out
    assert "MANUAL INTERVENTION NEEDED" in out
    assert not [e for e in session.events if e.startswith("hand_over")]


def test_an_unreadable_reset_state_stops_for_a_person(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    store = ResetStore(session.state_directory())
    store.dir.mkdir(parents=True)
    (store.dir / "plan.json").write_text("{torn")
    notices: list[str] = []

    def menu(_s: Any, _c: Any, _p: Any, notice: str) -> MenuResult:
        notices.append(notice)
        return MenuResult(MenuExit.SHELL)

    code, _ = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=menu"), session, menu=menu)
    assert code is Exit.SHELL
    assert "cannot be read" in notices[0]


def test_unattended_reset_from_the_command_line_only_keeps_data(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.seal()
    code, _ = agent(parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent.action=reset-keep-data"), session)
    assert code is Exit.CONTINUE
    assert "plan_reset keep-data automatic" in session.events
    assert {"rpool/ROOT/alpha", "rpool/ROOT/beta", "rpool/ROOT/gamma"} <= session.zfs.nodes.keys()
    assert parse_cmdline("bootagent.action=reset-erase-all").action is None  # no such unattended action


def test_a_reset_confirmed_in_the_menu_is_carried_out_on_the_console_then_booted(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.seal()
    plan = session.plan_reset(ResetMode.KEEP_DATA)
    code, out = agent(
        parse_cmdline("root=ZFS=rpool/ROOT/beta bootagent=reset bootagent.reset=keep-data"),
        session,
        menu=lambda *_: MenuResult(MenuExit.RESET, reset=plan),
    )
    assert code is Exit.CONTINUE
    assert "bootagent: factory reset (keep-data) to baseline r1" in out
    assert "bootagent: factory reset, step 1 of 4: making the new boot environment" in out
    assert session.events[-1] == f"hand_over {plan.new_dataset}"
