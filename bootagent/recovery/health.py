"""Health checks: executables an administrator or an appliance drops into two directories.

    /etc/bootagent/health.d/required/   every one must exit 0, or the boot is failed
    /etc/bootagent/health.d/wanted/     a failure is logged and recorded, the boot stays good

As greenboot does. They run in name order, one at a time, each with a time limit, with no input, their output
going to the journal of the running system. Files that are not executable, hidden files and editor backups
are skipped (and said to be).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bootagent.errors import CommandError
from bootagent.runner import Runner

LOG = logging.getLogger(__name__)

CHECKS_DIR = "/etc/bootagent/health.d"
CHECK_TIMEOUT = 300.0


class Need(StrEnum):
    REQUIRED = "required"
    WANTED = "wanted"


@dataclass(frozen=True)
class CheckResult:
    name: str
    need: Need
    passed: bool
    detail: str  # "exit 0", "exit 3", "timed out after 300 s", ...
    output: str
    seconds: float


@dataclass(frozen=True)
class HealthReport:
    results: tuple[CheckResult, ...]
    skipped: tuple[str, ...]

    @property
    def failed_required(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.need is Need.REQUIRED and not r.passed)

    @property
    def failed_wanted(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.need is Need.WANTED and not r.passed)

    @property
    def passed(self) -> bool:
        return not self.failed_required


def _skippable(path: Path) -> str | None:
    name = path.name
    if name.startswith(".") or name.endswith(("~", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".disabled")):
        return "hidden, a backup or disabled"
    if not path.is_file():
        return "not a regular file"
    if not os.access(path, os.X_OK):
        return "not executable"
    return None


def discover(directory: str | Path = CHECKS_DIR) -> tuple[list[tuple[Need, Path]], list[str]]:
    """The checks to run, required first, each group in name order; and what was skipped, with why."""
    base = Path(directory)
    found: list[tuple[Need, Path]] = []
    skipped: list[str] = []
    for need in (Need.REQUIRED, Need.WANTED):
        folder = base / need.value
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            skipped.append(f"{folder}: {exc.strerror or exc}")
            continue
        for path in entries:
            why = _skippable(path)
            if why is None:
                found.append((need, path))
            else:
                skipped.append(f"{need.value}/{path.name}: {why}")
    return found, skipped


def run_checks(
    runner: Runner,
    directory: str | Path = CHECKS_DIR,
    *,
    timeout: float = CHECK_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] | None = None,
) -> HealthReport:
    """Run the checks; `say` what passes, `warn` what fails (default: `say` too)."""
    loud = warn or say
    checks, skipped = discover(directory)
    for line in skipped:
        say(f"skipped {line}")
    results: list[CheckResult] = []
    for need, path in checks:
        started = clock()
        try:
            done = runner([str(path)], check=False, timeout=timeout)
            passed = done.returncode == 0
            detail = f"exit {done.returncode}"
            output = (done.stdout + done.stderr).strip()
        except CommandError as exc:  # timed out, or could not be started
            passed = False
            detail = exc.message
            output = ""
        except OSError as exc:  # e.g. a script without a #! line
            passed = False
            detail = f"cannot be run: {exc.strerror or exc}"
            output = ""
        result = CheckResult(path.name, need, passed, detail, output[-2000:], clock() - started)
        results.append(result)
        verdict = "passed" if passed else "FAILED"
        tell = say if passed else loud
        tell(f"{need.value} check {path.name}: {verdict} ({detail}, {result.seconds:.1f} s)")
        for line in output.splitlines()[-20:]:
            tell(f"  {path.name}: {line}")
    return HealthReport(tuple(results), tuple(skipped))


def summary(report: HealthReport) -> str:
    if not report.results:
        return "no health checks are installed"
    parts = [f"{len(report.results)} check(s)"]
    if report.failed_required:
        parts.append("required failed: " + ", ".join(report.failed_required))
    if report.failed_wanted:
        parts.append("wanted failed: " + ", ".join(report.failed_wanted))
    if report.passed and not report.failed_wanted:
        parts.append("all passed")
    return "; ".join(parts)


def names(report: HealthReport, need: Need) -> Sequence[str]:
    return [r.name for r in report.results if r.need is need]
