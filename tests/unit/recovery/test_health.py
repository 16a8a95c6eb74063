"""The health-check directories: what runs, in which order, and what a failure is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.recovery.health import Need, run_checks, summary
from bootagent.runner import run

pytestmark = pytest.mark.subprocess


def script(path: Path, body: str, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)


def test_required_and_wanted_checks_run_in_order_and_only_required_ones_fail_the_boot(tmp_path: Path) -> None:
    script(tmp_path / "required/20-web.sh", "echo web is down; exit 3")
    script(tmp_path / "required/10-disk.sh", "exit 0")
    script(tmp_path / "wanted/50-ntp.sh", "echo no time; exit 1")
    script(tmp_path / "required/30-off.sh", "exit 1", mode=0o644)  # not executable
    script(tmp_path / "required/40-x.sh~", "exit 1")  # an editor's backup
    said: list[str] = []
    report = run_checks(run, tmp_path, say=said.append)
    assert [(r.need, r.name, r.passed, r.detail) for r in report.results] == [
        (Need.REQUIRED, "10-disk.sh", True, "exit 0"),
        (Need.REQUIRED, "20-web.sh", False, "exit 3"),
        (Need.WANTED, "50-ntp.sh", False, "exit 1"),
    ]
    assert report.failed_required == ("20-web.sh",)
    assert report.failed_wanted == ("50-ntp.sh",)
    assert not report.passed
    assert sorted(report.skipped) == [
        "required/30-off.sh: not executable",
        "required/40-x.sh~: hidden, a backup or disabled",
    ]
    assert "  20-web.sh: web is down" in said
    assert summary(report) == "3 check(s); required failed: 20-web.sh; wanted failed: 50-ntp.sh"


def test_a_check_that_hangs_or_cannot_run_fails(tmp_path: Path) -> None:
    script(tmp_path / "required/hang", "sleep 30")
    bad = tmp_path / "required/nohashbang"
    bad.write_text("exit 0\n")
    bad.chmod(0o755)
    (tmp_path / "required/nohashbang").write_bytes(b"\x7fELF garbage")
    report = run_checks(run, tmp_path, timeout=0.5)
    details = {r.name: (r.passed, r.detail) for r in report.results}
    assert details["hang"][0] is False
    assert "did not finish within 0.5 s" in details["hang"][1]
    assert details["nohashbang"][0] is False
    assert "cannot be run" in details["nohashbang"][1]


def test_no_checks_is_a_pass(tmp_path: Path) -> None:
    report = run_checks(run, tmp_path / "nothing-here")
    assert report.passed
    assert report.results == ()
    assert summary(report) == "no health checks are installed"
