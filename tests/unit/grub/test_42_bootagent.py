"""grub.d/42_bootagent, the thin shell adapter: it prints what `bootagent grub-menu` prints, and when that is
nothing (or fails) it keeps GRUB's ordinary entries by running the disabled 10_linux itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "grub.d" / "42_bootagent"

pytestmark = pytest.mark.subprocess


def tool(path: Path, body: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def run(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "BOOTAGENT_ROOT": str(root), "pkgdatadir": "/usr/share/grub"}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tool(tmp_path / "etc/grub.d/10_linux", "echo \"menuentry 'Debian GNU/Linux' { true; }\"\n", mode=0o644)
    return tmp_path


def test_the_menu_is_what_bootagent_prints(root: Path) -> None:
    tool(root / "usr/sbin/bootagent", '[ "$1" = grub-menu ] && printf "menuentry x {\\n}\\n"\n')
    result = run(root)
    assert result.returncode == 0
    assert result.stdout == "menuentry x {\n}\n"
    assert "Debian GNU/Linux" not in result.stdout


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("exit 0\n", "no bootagent entries"),
        ("echo 'menuentry half' ; exit 3\n", "failed with exit code 3"),
    ],
)
def test_nothing_to_offer_keeps_the_ordinary_entries(root: Path, body: str, why: str) -> None:
    tool(root / "usr/sbin/bootagent", body)
    result = run(root)
    assert result.returncode == 0
    assert result.stdout == "menuentry 'Debian GNU/Linux' { true; }\n"
    assert why in result.stderr


def test_a_missing_command_keeps_the_ordinary_entries(root: Path) -> None:
    result = run(root)
    assert result.returncode == 0
    assert "Debian GNU/Linux" in result.stdout
    assert "is missing" in result.stderr


def test_an_enabled_10_linux_is_not_run_twice(root: Path) -> None:
    (root / "etc/grub.d/10_linux").chmod(0o755)  # grub-mkconfig runs it itself
    result = run(root)
    assert result.returncode == 0
    assert result.stdout == ""


def test_sourcing_runs_nothing(root: Path) -> None:
    tool(root / "usr/sbin/bootagent", "echo called >&2\n")
    env = {"PATH": os.environ["PATH"], "BOOTAGENT_ROOT": str(root), "BOOTAGENT_SOURCE_ONLY": "1"}
    result = subprocess.run(
        ["sh", "-c", f". {SCRIPT}; type bootagent_main"], env=env, capture_output=True, text=True, check=True
    )
    assert "called" not in result.stderr
    assert "bootagent_main" in result.stdout
