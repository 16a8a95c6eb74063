"""Lint and strict type checks run as tests: `pytest` is the single gate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.subprocess, pytest.mark.lint]


def _tool(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run scripts/setup-host.sh"
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)


def test_ruff_check() -> None:
    result = _run([_tool("ruff"), "check", "--output-format", "concise", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run([_tool("ruff"), "format", "--check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run([sys.executable, "-m", "mypy"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_parse() -> None:
    scripts = [
        p for d in ("grub.d", "initramfs-hooks", "packaging", "scripts", ".ci") for p in (ROOT / d).rglob("*")
    ]
    shell = [
        p for p in scripts if p.is_file() and p.read_bytes()[:2] == b"#!" and b"sh" in p.read_bytes()[:40]
    ]
    assert shell, "no shell scripts found"
    for path in shell:
        interpreter = "bash" if b"bash" in path.read_bytes()[:40] else "sh"
        result = _run([interpreter, "-n", str(path)])
        assert result.returncode == 0, f"{path}: {result.stderr}"
