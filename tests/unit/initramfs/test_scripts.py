"""The initramfs shell adapters, run against a temporary root (ROOTPREFIX) with fake programs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PREMOUNT = ROOT / "initramfs-hooks/scripts/init-premount/bootagent"
MKINITRD = ROOT / "initramfs-hooks/bootagent-mkinitrd"
POST_UPDATE = ROOT / "initramfs-hooks/post-update.d/bootagent"

pytestmark = pytest.mark.subprocess


def fake_root(tmp_path: Path, cmdline: str, exit_codes: list[int]) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text(cmdline + "\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/console").write_text("")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/lib/python3/dist-packages/bootagent").mkdir(parents=True)
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
        ["sh", str(PREMOUNT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        # no controlling terminal, as in early boot: an interactive `sh -i` started from a background job of a
        # terminal would otherwise stop on SIGTTOU when it takes the terminal for job control
        stdin=subprocess.DEVNULL,
        start_new_session=True,
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


def test_a_command_line_without_its_newline_is_read_whole(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "", [0])
    (root / "proc/cmdline").write_text("ro quiet bootagent=menu")
    assert run_premount(root).returncode == 0
    assert calls(root) == ["-S -m bootagent.boot.main"]


def test_shell_then_back_to_the_menu(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "bootagent=menu", [100, 0])
    # the fake console is a plain file the shell both reads and appends to: it starts with what the operator
    # types, or the shell would read its own prompts back forever
    (root / "dev/console").write_text("exit\n")
    result = run_premount(root)
    assert result.returncode == 0
    assert calls(root) == ["-S -m bootagent.boot.main"] * 2
    assert "recovery shell" in (root / "dev/console").read_text()


def fake_build_root(tmp_path: Path, python_body: str) -> Path:
    """A root with hook-functions whose copy_exec logs, and a fake python3."""
    root = tmp_path / "root"
    (root / "usr/share/initramfs-tools").mkdir(parents=True)
    (root / "usr/share/initramfs-tools/hook-functions").write_text(
        f"""copy_exec() {{
    echo "exec $1" >> {tmp_path}/log
    mkdir -p "$DESTDIR/usr/lib"; : > "$DESTDIR/usr/lib/${{1##*/}}"
}}
"""
    )
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "etc/bootagent").mkdir(parents=True)
    (root / "etc/bootagent/bootagent.yaml").write_text("pool: rpool\n")
    (root / "usr/bin").mkdir(parents=True)
    fake_python = root / "usr/bin/python3"
    fake_python.write_text(f'#!/bin/sh\necho "python $*" >> {tmp_path}/log\n{python_body}')
    fake_python.chmod(0o755)
    return root


def run_mkinitrd(root: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ROOTPREFIX=str(root), TMPDIR=str(tmp_path))
    return subprocess.run(
        ["sh", str(MKINITRD), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def unpack(image: Path, dest: Path) -> None:
    dest.mkdir()
    data = subprocess.run(["zstd", "-dc", str(image)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "--quiet", "-idm"], input=data, cwd=dest, capture_output=True, check=True)


def test_mkinitrd_builds_the_agent_image(tmp_path: Path) -> None:
    root = fake_build_root(
        tmp_path,
        """case "$*" in
*stage*) pkg="$5/usr/lib/python3/dist-packages/bootagent"; mkdir -p "$pkg"; : > "$pkg/__init__.pyc"
         echo /usr/bin/python3.11; echo /usr/lib/python3.11/lib-dynload/_curses.so ;;
*grubenv-conf*) echo GRUBENV_UUID=abcd ;;
esac
""",
    )
    result = run_mkinitrd(root, tmp_path)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0].startswith("python -S -m bootagent.boot.imagefiles stage ")
    assert "exec /usr/bin/python3.11" in log
    assert "exec /usr/lib/python3.11/lib-dynload/_curses.so" in log
    image = root / "boot/bootagent.img"
    unpacked = tmp_path / "unpacked"
    unpack(image, unpacked)
    assert (unpacked / "usr/lib/python3/dist-packages/bootagent/__init__.pyc").is_file()
    assert (unpacked / "etc/bootagent/initramfs.conf").read_text() == "GRUBENV_UUID=abcd\n"
    assert (unpacked / "etc/bootagent/bootagent.yaml").read_text() == "pool: rpool\n"
    # the same merged-/usr link as the ordinary initramfs, so unpacking one over the other agrees
    assert os.readlink(unpacked / "lib") == "usr/lib"
    assert os.readlink(unpacked / "usr/bin/python3") == "python3"
    # nothing left behind: no staging tree, no half-written image
    assert not list(tmp_path.glob("bootagent-mkinitrd.*"))
    assert [p.name for p in (root / "boot").iterdir()] == ["bootagent.img"]


def test_mkinitrd_failure_keeps_the_previous_image(tmp_path: Path) -> None:
    root = fake_build_root(tmp_path, "exit 1\n")
    (root / "boot").mkdir()
    (root / "boot/bootagent.img").write_bytes(b"previous")
    result = run_mkinitrd(root, tmp_path)
    assert result.returncode == 1
    assert "left as it was" in result.stderr
    assert (root / "boot/bootagent.img").read_bytes() == b"previous"
    assert sorted(p.name for p in (root / "boot").iterdir()) == ["bootagent.img"]
    assert not list(tmp_path.glob("bootagent-mkinitrd.*"))


def test_post_update_hook_never_fails_the_kernel_update(tmp_path: Path) -> None:
    """update-initramfs runs it with VERSION and the initramfs path; without bootagent-mkinitrd (package
    removed, conffile left) it does nothing and succeeds."""
    result = subprocess.run(
        ["sh", str(POST_UPDATE), "6.1.0-56-amd64", str(tmp_path / "initrd.img-6.1.0-56-amd64")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    if Path("/usr/sbin/bootagent-mkinitrd").exists():
        pytest.fail("this test expects a host without the package installed")
    assert result.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_premount_without_the_agent_image_says_so_and_boots_on(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "root=ZFS=rpool/ROOT/beta bootagent=menu", [0])
    shutil.rmtree(root / "usr/lib/python3")
    result = run_premount(root)
    assert result.returncode == 0
    assert calls(root) == []
    assert "the agent is not in this initramfs" in (root / "dev/console").read_text()


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
