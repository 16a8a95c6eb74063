"""`bootagent factory seal|list` and `bootagent factory-reset` from the running system."""

from __future__ import annotations

import json
from pathlib import Path

from bootagent.errors import ExitCode
from bootagent.grubenv import GrubenvFile
from bootagent.model import FACTORY_HOLD_TAG
from bootagent.reset.mode import ResetMode
from bootagent.reset.store import RESET_VAR, ResetStore
from tests.unit.cli.test_recovery import pool, run_cli


def test_seal_then_list(tmp_path: Path) -> None:
    zfs = pool(tmp_path)
    code, out, err = run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    assert code == 0, err
    assert "sealed factory baseline r1 from beta (and rpool/config)" in out
    assert FACTORY_HOLD_TAG in zfs.holds("rpool/FACTORY/r1/system@factory")
    code, out, err = run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    assert code == ExitCode.REFUSED
    assert "--replace" in err
    code, out, _ = run_cli(tmp_path, zfs, "factory", "list", "--json")
    (found,) = json.loads(out)["baselines"]
    assert found["release"] == "r1"
    assert found["complete"] is True


def test_a_reset_is_asked_for_the_next_boot_with_yes(tmp_path: Path) -> None:
    zfs = pool(tmp_path)
    run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    before = set(zfs.nodes)
    code, out, err = run_cli(tmp_path, zfs, "factory-reset", "--keep-data", "--yes")
    assert code == 0, err
    assert "factory reset (keep-data) to baseline r1, at the next boot" in out
    assert "rpool/customer" not in out  # this pool has none; what there is, is listed
    assert "rpool/config" in out
    assert set(zfs.nodes) == before  # nothing changes until the agent runs it
    request = ResetStore(str(tmp_path / "state")).request()
    assert request is not None
    assert request.mode is ResetMode.KEEP_DATA
    assert request.requested_by == "cli"
    assert GrubenvFile(tmp_path / "grub" / "grubenv").read().get(RESET_VAR) == "keep-data"
    code, out, _ = run_cli(tmp_path, zfs, "status")
    assert "a factory reset (keep-data) is asked for" in out
    code, out, err = run_cli(tmp_path, zfs, "factory-reset", "--cancel")
    assert code == 0, err
    assert ResetStore(str(tmp_path / "state")).request() is None
    assert GrubenvFile(tmp_path / "grub" / "grubenv").read().get(RESET_VAR) is None


def test_without_a_terminal_or_yes_nothing_is_asked_for(tmp_path: Path) -> None:
    zfs = pool(tmp_path)
    run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    code, _, err = run_cli(tmp_path, zfs, "factory-reset", "--erase-all")
    assert code == ExitCode.REFUSED
    assert "add --yes" in err
    assert ResetStore(str(tmp_path / "state")).request() is None


def test_no_baseline_refuses_with_a_hint(tmp_path: Path) -> None:
    code, _, err = run_cli(tmp_path, pool(tmp_path), "factory-reset", "--keep-data", "--yes")
    assert code == ExitCode.REFUSED
    assert "bootagent factory seal" in err


def test_secure_needs_erase_all(tmp_path: Path) -> None:
    code, _, err = run_cli(tmp_path, pool(tmp_path), "factory-reset", "--keep-data", "--secure", "--yes")
    assert code == ExitCode.USAGE
    assert "--secure goes with --erase-all" in err


def test_a_half_reset_root_booted_around_the_agent_reboots_into_it_then_stops(tmp_path: Path) -> None:
    """GRUB's flag lost (or GRUB bypassed): boot-start sets it again and reboots; never runs the system."""
    from bootagent.reset.service import prepare
    from tests.fakes import FakeZfs

    zfs: FakeZfs = pool(tmp_path)
    run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    from bootagent.config import Config

    plan = prepare(zfs, Config(pool="rpool"), "rpool", ResetMode.ERASE_ALL)
    from dataclasses import replace

    ResetStore(str(tmp_path / "state")).save_plan(replace(plan, op="op1", done=3))
    code, out, err = run_cli(tmp_path, zfs, "boot-start")
    assert code == ExitCode.REFUSED
    assert "rebooting into the agent" in err
    assert GrubenvFile(tmp_path / "grub" / "grubenv").read().get(RESET_VAR) == "erase-all"
    code, out, err = run_cli(tmp_path, zfs, "boot-start")
    assert code == ExitCode.REFUSED
    assert "must not run until the reset is finished" in err


def test_on_two_pools_a_baseline_and_a_reset_are_refused_until_they_carry_the_boot_half(
    tmp_path: Path,
) -> None:
    """A baseline copies the root half only: a reset to it would make an environment that cannot boot."""
    from tests.fakes import howto_pools

    zfs = howto_pools(pool(tmp_path))
    before = set(zfs.nodes)
    code, _, err = run_cli(tmp_path, zfs, "factory", "seal", "--release", "r1")
    assert code == ExitCode.REFUSED
    assert "factory baselines of two-pool environments (/boot in bpool/BOOT) are not supported yet" in err
    code, _, err = run_cli(tmp_path, zfs, "factory-reset", "--keep-data", "--yes")
    assert code == ExitCode.REFUSED
    assert "not supported yet" in err
    assert set(zfs.nodes) == before
