"""`bootagent status` on boot counting, and the verbs the systemd units run (boot-start, health, bless)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bootagent.cli.context import Context, running_system
from bootagent.cli.main import main
from bootagent.grubenv import GrubenvFile
from bootagent.recovery.counter import TRIES_VAR
from bootagent.recovery.ladder import Attempt, LadderState
from bootagent.recovery.lifecycle import RunningSystem, Watchdog
from bootagent.recovery.store import RecoveryStore
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, reference_pool


def pool(tmp_path: Path) -> FakeZfs:
    zfs = reference_pool()
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "grub").mkdir(exist_ok=True)
    zfs.mounted[str(tmp_path / "state")] = "rpool/bootagent"
    return zfs


def run_cli(
    tmp_path: Path, zfs: FakeZfs, *argv: str, bless: str = "enabled", checks: Path | None = None
) -> tuple[int, str, str]:
    cfg = tmp_path / "bootagent.yaml"
    cfg.write_text(f"pool: rpool\ngrubenv: {tmp_path}/grub/grubenv\n")
    calls: list[tuple[str, ...]] = []

    def runner(argv: Sequence[str], **_: Any) -> CommandResult:
        calls.append(tuple(argv))
        if argv[:2] == ["systemctl", "is-enabled"]:
            state = bless if argv[2] == "bootagent-bless.service" else "enabled"
            return CommandResult(tuple(argv), 0 if state == "enabled" else 1, state + "\n", "")
        if checks is not None and str(argv[0]).startswith(str(checks)):
            return CommandResult(tuple(argv), 1, "", "web is down\n")
        return CommandResult(tuple(argv), 0, "", "")

    def recovery(ctx: Context) -> RunningSystem:
        dog = Watchdog(arm=lambda s: f"armed {s}", disarm=lambda: "stopped", present=lambda: False)
        system = replace(running_system(ctx), runner=runner, watchdog=dog, motd=str(tmp_path / "motd"))
        return replace(system, checks_dir=str(checks)) if checks is not None else system

    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(cfg), *argv], backend=lambda: zfs, stdout=out, stderr=err, recovery=recovery)
    return code, out.getvalue(), err.getvalue()


def test_status_shows_the_counter_and_warns_when_nothing_blesses(tmp_path: Path) -> None:
    zfs = pool(tmp_path)
    GrubenvFile(tmp_path / "grub" / "grubenv").update({TRIES_VAR: "2"})
    code, out, _ = run_cli(tmp_path, zfs, "status", bless="disabled")
    assert code == 0
    assert "boot counter:    attempt 2 of 3 since the last good boot" in out
    assert "bootagent-bless.service is disabled: nothing marks a boot good" in out
    assert "systemctl enable bootagent-bless.service" in out
    assert "no watchdog device" in out
    code, out, _ = run_cli(tmp_path, zfs, "status", "--json")
    data = json.loads(out)["boot_counting"]
    assert (data["tries"], data["limit"], data["grubenv_sound"]) == (2, 3, True)
    assert data["units"]["bootagent-bless.service"] == "enabled"


def test_bless_and_status_after_a_fallback(tmp_path: Path) -> None:
    zfs = pool(tmp_path)
    GrubenvFile(tmp_path / "grub" / "grubenv").update({TRIES_VAR: "3", "bootagent_default": "gamma"})
    RecoveryStore(tmp_path / "state").save_ladder(LadderState("gamma", 3, "", (Attempt("beta"),), started=1))
    code, out, err = run_cli(tmp_path, zfs, "bless")
    assert code == 0, err
    assert "this boot is a fallback to beta after 3 failed boots of gamma" in out
    assert GrubenvFile(tmp_path / "grub" / "grubenv").read().get(TRIES_VAR) == "0"
    code, out, _ = run_cli(tmp_path, zfs, "status", "--json")
    data = json.loads(out)["boot_counting"]
    assert data["ladder"] is None
    assert data["tries"] == 0
    assert data["last_recovery"]["summary"].startswith("this boot is a fallback to beta")
    assert any(e["action"] == "bless" and e["actor"] == "automatic" for e in json.loads(out)["journal"])


def test_health_exits_8_when_a_required_check_fails(tmp_path: Path) -> None:
    checks = tmp_path / "health.d"
    (checks / "required").mkdir(parents=True)
    (checks / "required" / "web.sh").write_text("#!/bin/sh\nexit 1\n")
    (checks / "required" / "web.sh").chmod(0o755)
    code, out, err = run_cli(tmp_path, pool(tmp_path), "health", checks=checks)
    assert code == 8
    assert "required check web.sh failed" in err
