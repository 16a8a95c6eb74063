"""GRUB's menu regeneration: update-grub through the runner; every failure is a warning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bootagent.bootmenu import GrubMenu, NoMenu, boot_menu
from bootagent.config import Tristate
from bootagent.errors import CommandError
from bootagent.runner import CommandResult


class Recorder:
    def __init__(self, fail: CommandError | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        if self.fail:
            raise self.fail
        return CommandResult(tuple(argv), 0, "", "Generating grub configuration file ...\ndone\n")


def test_runs_update_grub_from_path() -> None:
    runner = Recorder()
    refreshed = GrubMenu(runner=runner, which=lambda name: f"/usr/sbin/{name}").refresh()
    assert refreshed.updated
    assert refreshed.warning is None
    assert runner.calls == [("/usr/sbin/update-grub",)]


def test_without_update_grub_nothing_runs_and_nothing_is_wrong() -> None:
    runner = Recorder()
    refreshed = GrubMenu(runner=runner, which=lambda name: None).refresh()
    assert not refreshed.updated
    assert refreshed.warning is None
    assert runner.calls == []


def test_a_failing_update_grub_is_a_warning_with_a_hint() -> None:
    error = CommandError(["/usr/sbin/update-grub"], returncode=1, stderr="grub-probe: error: failed\n")
    refreshed = GrubMenu(runner=Recorder(error), which=lambda name: f"/usr/sbin/{name}").refresh()
    assert not refreshed.updated
    assert refreshed.warning is not None
    assert "the change is done" in refreshed.warning
    assert "grub-probe: error: failed" in refreshed.warning
    assert "run 'update-grub'" in refreshed.warning


def test_required_but_missing_is_a_warning() -> None:
    refreshed = GrubMenu(runner=Recorder(), which=lambda name: None, required=True).refresh()
    assert not refreshed.updated
    assert refreshed.warning is not None
    assert "no update-grub on this system" in refreshed.warning


def test_the_setting_chooses() -> None:
    auto = boot_menu(Tristate.AUTO)
    assert isinstance(auto, GrubMenu)
    assert not auto.required
    on = boot_menu(Tristate.ON)
    assert isinstance(on, GrubMenu)
    assert on.required
    off = boot_menu(Tristate.OFF)
    assert isinstance(off, NoMenu)
    assert not off.refresh().updated
