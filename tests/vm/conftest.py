"""VM scenarios: a session-scoped image (built or reused from the cache), one fresh overlay per test."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.agent import AgentLayer
from testbed.booted import BootedState
from testbed.machine import Machine, scenario_cpus

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "vm"


def _boots(item: pytest.Item) -> int:
    marker = item.get_closest_marker("boots")
    return int(marker.args[0]) if marker is not None and marker.args else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)
    # the scenarios that boot most first: two guests side by side then finish together, not one long one last
    items.sort(key=lambda item: -_boots(item))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    item.stash.setdefault(_REPORTS, {})[report.when] = report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


_WORKER_TIMINGS: list[tuple[str, float]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist (scripts/test runs two guests side by side), a worker hands its guests' timings
    to the controller, which prints the summary."""
    from testbed.machine import TIMINGS

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["bootagent_timings"] = list(TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    _WORKER_TIMINGS.extend(tuple(t) for t in getattr(node, "workeroutput", {}).get("bootagent_timings", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the tier's time went: the guests' boots (power on, reboot or cut -> root shell, including any
    menu on the way) and resumes from the saved state, against the scenarios' total (the sum over the guests
    that ran side by side, so it may exceed the wall time)."""
    from testbed.machine import TIMINGS

    timings = TIMINGS + _WORKER_TIMINGS
    if not timings:
        return
    total = sum(
        r.duration
        for reports in terminalreporter.stats.values()
        for r in reports
        if getattr(r, "when", "") == "call"
    )
    terminalreporter.section("where the VM tier's time went")
    for what in ("boot", "resume"):
        times = sorted(t for w, t in timings if w == what)
        if times:
            terminalreporter.write_line(
                f"{len(times):3d} {what}s: {sum(times):7.0f} s in all, "
                f"median {times[len(times) // 2]:5.1f} s, slowest {times[-1]:5.1f} s"
            )
    terminalreporter.write_line(f"scenarios (test bodies): {total:7.0f} s")


@pytest.fixture(scope="session")
def vm_layer() -> AgentLayer | None:
    """The cached disk image with the bootagent .deb installed (built on first use; scripts/test builds it
    before the tier starts, with its progress on the terminal). None with BOOTAGENT_VM_IMAGE=PATH, which
    uses that image as it is (no build, no check that it is current)."""
    if os.environ.get("BOOTAGENT_VM_IMAGE"):
        return None
    if os.geteuid() != 0:
        pytest.fail("the VM test bed needs root (debootstrap, chroot, mounts); run it as root")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run scripts/setup-host.sh")
    from testbed.agent import build_agent_layer
    from testbed.build import build_image

    with _build_lock():
        return build_agent_layer(build_image())


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """Guests run side by side (pytest-xdist): one worker builds a missing stage, the other waits for it
    and then finds it in the cache."""
    from testbed.cache import cache_dir

    with (cache_dir() / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def vm_base(vm_layer: AgentLayer | None) -> Path:
    return vm_layer.disk if vm_layer is not None else Path(os.environ["BOOTAGENT_VM_IMAGE"])


@pytest.fixture(scope="session")
def vm_booted(vm_layer: AgentLayer | None) -> BootedState | None:
    """The image booted once to its root shell and saved; None with BOOTAGENT_VM_IMAGE (then `booted`
    boots each guest instead)."""
    if vm_layer is None:
        return None
    from testbed.booted import build_booted

    with _build_lock():
        return build_booted(vm_layer)


@contextlib.contextmanager
def _guest(request: pytest.FixtureRequest, base: Path, workdir: Path) -> Iterator[Machine]:
    """A guest on its own throwaway overlay; its console log is kept in artifacts/vm/ when the test fails."""
    vm = Machine(base, workdir, smp=scenario_cpus())
    try:
        yield vm
    finally:
        vm.close()
        reports = request.node.stash.get(_REPORTS, {})
        if any(r.failed for r in reports.values()) and vm.log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            suffix = "" if workdir.name == "vm" else f"-{workdir.name}"
            shutil.copyfile(vm.log_path, ARTIFACTS / f"{name}{suffix}.log")
        vm.overlay.unlink(missing_ok=True)


@pytest.fixture
def machine(request: pytest.FixtureRequest, vm_base: Path, tmp_path: Path) -> Iterator[Machine]:
    """A guest that is not running yet: the scenario powers it on (the boot is what it looks at)."""
    with _guest(request, vm_base, tmp_path / "vm") as vm:
        yield vm


@contextlib.contextmanager
def _booted_guest(
    request: pytest.FixtureRequest, vm_base: Path, vm_booted: BootedState | None, workdir: Path
) -> Iterator[Machine]:
    base = vm_booted.disk if vm_booted is not None else vm_base
    with _guest(request, base, workdir) as vm:
        if vm_booted is not None:
            vm.resume(vm_booted.state)
        else:
            vm.start()
            vm.wait_for_boot()
        yield vm


@pytest.fixture
def booted(
    request: pytest.FixtureRequest, vm_base: Path, vm_booted: BootedState | None, tmp_path: Path
) -> Iterator[Machine]:
    """A guest already at its root shell in the active environment: resumed from the saved state in seconds
    (the boot is not what such a scenario looks at; the scenarios that do, boot for real)."""
    with _booted_guest(request, vm_base, vm_booted, tmp_path / "vm") as vm:
        yield vm


@pytest.fixture
def second_booted(
    request: pytest.FixtureRequest, vm_base: Path, vm_booted: BootedState | None, tmp_path: Path
) -> Iterator[Machine]:
    """Another guest like `booted`, on its own overlay (a storage host, a second machine)."""
    with _booted_guest(request, vm_base, vm_booted, tmp_path / "vm2") as vm:
        yield vm
