"""VM scenarios: a session-scoped image (built or reused from the cache), one fresh overlay per test."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from testbed.machine import Machine

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "vm"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    item.stash.setdefault(_REPORTS, {})[report.when] = report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture(scope="session")
def vm_base() -> Path:
    """The cached disk image with the bootagent .deb installed (built on first use).

    BOOTAGENT_VM_IMAGE=PATH uses that image as it is (no build, no check that it is current).
    """
    given = os.environ.get("BOOTAGENT_VM_IMAGE")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        pytest.fail("the VM test bed needs root (debootstrap, chroot, mounts); run it as root")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run scripts/setup-host.sh")
    from testbed.agent import build_agent_layer
    from testbed.build import build_image

    return build_agent_layer(build_image()).disk


@pytest.fixture
def machine(request: pytest.FixtureRequest, vm_base: Path, tmp_path: Path) -> Iterator[Machine]:
    """A guest on its own throwaway overlay; its console log is kept in artifacts/vm/ when the test fails."""
    vm = Machine(vm_base, tmp_path / "vm")
    try:
        yield vm
    finally:
        vm.close()
        reports = request.node.stash.get(_REPORTS, {})
        if any(r.failed for r in reports.values()) and vm.log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            shutil.copyfile(vm.log_path, ARTIFACTS / f"{name}.log")
        vm.overlay.unlink(missing_ok=True)
