"""The initramfs shell adapters, run against a temporary root (ROOTPREFIX) with fake programs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PREMOUNT = ROOT / "initramfs-hooks/scripts/init-premount/bootagent"
HOOK = ROOT / "initramfs-hooks/hooks/bootagent"

pytestmark = pytest.mark.subprocess


def fake_root(tmp_path: Path, cmdline: str, exit_codes: list[int]) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text(cmdline + "\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/console").write_text("")
    (tmp_path / "usr/bin").mkdir(parents=True)
    codes = " ".join(str(c) for c in exit_codes)
    python = tmp_path / "usr/bin/python3"
    python.write_text(
        f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
n=$(wc -l < {tmp_path}/calls)
set -- {codes}
shift $((n - 1))
exit ${{1:-0}}
"""
    )
    python.chmod(0o755)
    return tmp_path


def run_premount(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ROOTPREFIX=str(root))
    return subprocess.run(
        ["sh", str(PREMOUNT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_prereqs() -> None:
    out = subprocess.run(["sh", str(PREMOUNT), "prereqs"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "udev"


@pytest.mark.parametrize(
    "cmdline",
    [
        "root=ZFS=rpool/ROOT/beta ro quiet",
        "root=ZFS=rpool/ROOT/beta bootagentx=1 notbootagent=menu",
        "root=ZFS=rpool/ROOT/beta bootagent=menu bootagent.kexec=1",
    ],
)
def test_ordinary_boot_never_starts_python(tmp_path: Path, cmdline: str) -> None:
    root = fake_root(tmp_path, cmdline, [0])
    assert run_premount(root).returncode == 0
    assert calls(root) == []


@pytest.mark.parametrize(
    "cmdline",
    ["root=ZFS=rpool/ROOT/beta bootagent=menu", "bootagent", "ro bootagent.action=boot:alpha quiet"],
)
def test_agent_runs_when_asked(tmp_path: Path, cmdline: str) -> None:
    root = fake_root(tmp_path, cmdline, [0])
    assert run_premount(root).returncode == 0
    assert calls(root) == ["-S -m bootagent.boot.main"]


def test_shell_then_back_to_the_menu(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "bootagent=menu", [100, 0])
    result = run_premount(root)
    assert result.returncode == 0
    assert calls(root) == ["-S -m bootagent.boot.main"] * 2
    assert "recovery shell" in (root / "dev/console").read_text()


def test_hook_prereqs_and_staging(tmp_path: Path) -> None:
    out = subprocess.run(["sh", str(HOOK), "prereqs"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "zfs"
    root = tmp_path / "root"
    dest = tmp_path / "dest"
    dest.mkdir()
    (root / "usr/share/initramfs-tools").mkdir(parents=True)
    (root / "usr/share/initramfs-tools/hook-functions").write_text(
        f"""copy_exec() {{ echo "exec $1" >> {tmp_path}/log; }}
copy_file() {{ echo "file $2 $3" >> {tmp_path}/log; }}
"""
    )
    (root / "usr/bin").mkdir(parents=True)
    fake_python = root / "usr/bin/python3"
    fake_python.write_text(
        f"""#!/bin/sh
echo "python $*" >> {tmp_path}/log
case "$*" in
*stage*) echo /usr/bin/python3.11; echo /usr/lib/python3.11/lib-dynload/_curses.so ;;
*grubenv-conf*) echo GRUBENV_UUID=abcd ;;
esac
"""
    )
    fake_python.chmod(0o755)
    env = dict(os.environ, ROOTPREFIX=str(root), DESTDIR=str(dest))
    result = subprocess.run(
        ["sh", str(HOOK)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0] == f"python -S -m bootagent.boot.imagefiles stage {dest}"
    assert "exec /usr/bin/python3.11" in log
    assert "exec /usr/lib/python3.11/lib-dynload/_curses.so" in log
    assert (dest / "etc/bootagent/initramfs.conf").read_text() == "GRUBENV_UUID=abcd\n"


def test_hook_never_fails_the_image_build(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/share/initramfs-tools").mkdir(parents=True)
    (root / "usr/share/initramfs-tools/hook-functions").write_text("copy_exec() { :; }\ncopy_file() { :; }\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("#!/bin/sh\nexit 1\n")
    (root / "usr/bin/python3").chmod(0o755)
    env = dict(os.environ, ROOTPREFIX=str(root), DESTDIR=str(tmp_path))
    result = subprocess.run(
        ["sh", str(HOOK)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "the image boots without it" in result.stderr


def test_other_consoles_are_told_where_the_menu_is(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path, "root=ZFS=rpool/ROOT/beta console=tty0 console=ttyS0,115200n8 bootagent=menu", [0]
    )
    (root / "dev/tty1").write_text("")
    (root / "dev/ttyS0").write_text("")
    assert run_premount(root).returncode == 0
    assert (root / "dev/tty1").read_text() == "bootagent: the recovery menu is on the console ttyS0\n"
    assert (root / "dev/ttyS0").read_text() == ""
    assert calls(root) == ["-S -m bootagent.boot.main"]
