"""The unattended recovery in the early-boot agent (bootagent=recover): the ladder's step is persisted and
journalled (actor automatic) before it is taken, the environments given up on are marked, and the end of the
ladder is the manual-intervention menu, never a reboot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from bootagent.boot.cmdline import parse_cmdline
from bootagent.boot.main import Exit, run_agent
from bootagent.boot.recover import recovery_info
from bootagent.boot.session import BootDecision, MenuExit, MenuResult
from bootagent.config import Config, LastResort, Recovery
from bootagent.errors import RefusedError
from bootagent.model import Actor, Prop
from bootagent.recovery.ladder import Attempt, LadderState, Recovered
from bootagent.recovery.store import BootRecord, RecoveryStore
from tests.unit.boot.test_main import DEV, FakeSession, devices, runner

AT_LIMIT = "root=ZFS=rpool/ROOT/gamma bootagent=recover console=tty0 console=ttyS0,115200"


def good(session: FakeSession, **when: int) -> None:
    for name, epoch in when.items():
        session.zfs.set_user(f"rpool/ROOT/{name}", {Prop.LAST_GOOD.value: str(epoch)})


def recover(session: FakeSession, config: Config | None = None) -> tuple[Exit, str, list[str]]:
    console = io.StringIO()
    notices: list[str] = []

    def menu(_session: Any, _config: Any, _params: Any, notice: str) -> MenuResult:
        assert notice, "only the manual-intervention menu may open during an unattended recovery"
        notices.append(notice)
        return MenuResult(MenuExit.REBOOT)  # what a person chose there

    code = run_agent(
        parse_cmdline(AT_LIMIT),
        config or Config(),
        console,
        runner=runner,
        session_factory=lambda _pool: session,
        menu=menu,
        wait=devices([DEV]),
    )
    return code, console.getvalue(), notices


def test_the_last_known_good_environment_is_booted_and_the_failing_one_marked(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    good(session, beta=200, gamma=100)
    store = RecoveryStore(tmp_path / "state")
    store.save_boot(BootRecord("b0", "gamma", 50, 3, health="failed", failed_required=("web.sh",)))
    code, out, notices = recover(session)
    assert code is Exit.CONTINUE
    assert notices == []
    assert "hand_over rpool/ROOT/beta" in session.events
    assert "booting beta, the last-known-good environment" in out
    state = store.ladder()
    assert (state.failing, state.reason, state.attempts) == (
        "gamma",
        "required check web.sh failed",
        (Attempt("beta"),),
    )
    gamma = session.envs.inventory().find("gamma")
    assert gamma.failed is not None
    assert "web.sh" in gamma.failed
    entries = session.envs.journal.entries(20)
    automatic = [
        (e.action, e.target) for e in entries if e.actor is Actor.AUTOMATIC and e.outcome.value == "ok"
    ]
    assert ("mark-failed", "gamma") in automatic
    assert ("recovery", "beta") in automatic


def test_back_at_the_limit_the_next_rung_and_then_the_manual_screen(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    good(session, beta=200, alpha=150)
    config = Config(recovery=Recovery(older_good=1))
    recover(session, config)
    assert session.events[-1] == "hand_over rpool/ROOT/beta"
    code, out, _ = recover(session, config)  # beta did not come up either
    assert session.events[-1] == "hand_over rpool/ROOT/alpha"
    code, out, notices = recover(session, config)  # nor alpha
    assert code is Exit.REBOOT  # the person at the screen chose to reboot
    assert len(notices) == 1
    assert notices[0].startswith(
        "gamma failed 3 boots in a row (it never reached the real root); beta was tried and it never reached"
    )
    assert notices[0].endswith("manual intervention needed")
    assert "MANUAL INTERVENTION NEEDED" in out
    inv = session.envs.inventory()
    assert all(inv.find(n).failed for n in ("gamma", "beta", "alpha"))
    # and every later boot at the limit stops there again, never boots anything by itself
    before = [e for e in session.events if e.startswith("hand_over")]
    recover(session, config)
    assert [e for e in session.events if e.startswith("hand_over")] == before


def test_a_rung_without_a_kernel_is_skipped_at_once(tmp_path: Path) -> None:
    class NoKernelForBeta(FakeSession):
        def boot(self, environment: str) -> BootDecision:
            if environment == "beta":
                raise RefusedError("beta has no bootable kernel")
            return super().boot(environment)

    session = NoKernelForBeta(tmp_path)
    good(session, beta=200, alpha=150)
    code, out, _ = recover(session, Config(recovery=Recovery(older_good=1)))
    assert session.events[-1] == "hand_over rpool/ROOT/alpha"
    assert "beta cannot be booted: beta has no bootable kernel" in out
    assert RecoveryStore(tmp_path / "state").ladder().attempts[0] == Attempt(
        "beta", "beta has no bootable kernel"
    )


def test_the_last_resort_resets_keeping_the_data_and_boots_the_factory(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)
    session.seal()
    code, out, notices = recover(session, Config(recovery=Recovery(last_resort=LastResort.RESET_KEEP_DATA)))
    assert code is Exit.CONTINUE
    assert not notices
    assert "plan_reset keep-data automatic" in session.events
    (handed,) = [e for e in session.events if e.startswith("hand_over")]
    new = handed.removeprefix("hand_over ")
    assert session.zfs.nodes[new].origin == "rpool/FACTORY/r1/system@factory"
    assert "factory reset, step 1 of" in out


def test_a_last_resort_that_cannot_reset_stops_at_the_manual_screen(tmp_path: Path) -> None:
    session = FakeSession(tmp_path)  # no baseline sealed
    code, out, notices = recover(session, Config(recovery=Recovery(last_resort=LastResort.RESET_KEEP_DATA)))
    assert notices
    assert "the factory reset failed: there is no complete factory baseline" in notices[0]
    assert not [e for e in session.events if e.startswith("hand_over")]


def test_a_failing_recovery_never_boots_on_into_the_failing_environment(tmp_path: Path) -> None:
    class Broken(FakeSession):
        def state_directory(self) -> str:
            raise RuntimeError("no state")

    session = Broken(tmp_path)
    code, out, _ = recover(session)
    assert code is Exit.SHELL
    assert "manual intervention needed" in out
    assert not [e for e in session.events if e.startswith("hand_over")]


def test_the_menu_a_person_opens_shows_the_counter_and_the_recovery(tmp_path: Path) -> None:
    params = parse_cmdline("root=ZFS=rpool/ROOT/gamma bootagent=menu bootagent.failed=2 bootagent.limit=3")
    store = RecoveryStore(tmp_path)
    assert recovery_info(str(tmp_path), params) == (
        "boot counter: 2 failed boot(s) in a row (the unattended recovery starts at 3)"
    )
    store.save_ladder(LadderState("gamma", 3, "", (Attempt("beta"),), started=1))
    assert recovery_info(str(tmp_path), params).endswith(
        "unattended recovery in progress: gamma failed 3 boots; tried beta"
    )
    store.end_ladder(Recovered("beta", "gamma", 3, "", (Attempt("beta"),), manual=False, time=5))
    assert recovery_info(str(tmp_path), parse_cmdline("bootagent=menu")) == (
        "last recovery: this boot is a fallback to beta after 3 failed boots of gamma"
    )
