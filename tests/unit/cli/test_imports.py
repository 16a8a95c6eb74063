"""What every boot's units pay for before they start: `bootagent boot-start`, `health` and `bless` import
bootagent.cli.main, so it must not import the reset planner or pyzfs (whose cffi declarations alone take
about two seconds to parse in a guest). They are imported by the verbs that use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("bootagent.reset.plan", "bootagent.reset.baseline", "bootagent.reset.run", "libzfs_core", "cffi")


@pytest.mark.subprocess
def test_the_command_imports_neither_the_reset_planner_nor_pyzfs() -> None:
    probe = (
        "import json, sys; import bootagent.cli.main; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
    # and the probe sees them when they are imported (it is not blind)
    done = subprocess.run(
        [sys.executable, "-c", probe.replace("import bootagent.cli.main", "import bootagent.reset.plan")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "bootagent.reset.plan" in json.loads(done.stdout)
