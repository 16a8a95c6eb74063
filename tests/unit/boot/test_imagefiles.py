"""Staging the agent into an initramfs tree: what the agent imports (lazily too), compiled, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.boot import imagefiles

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    dest = tmp_path_factory.mktemp("initramfs")
    mp = pytest.MonkeyPatch()
    mp.setenv("BOOTAGENT_PYTHONPATH", str(REPO))
    try:
        elf = imagefiles.stage(str(dest))
    finally:
        mp.undo()
    return dest, elf


def test_agent_and_libraries_are_staged_compiled(staged: tuple[Path, list[str]]) -> None:
    dest, _ = staged
    pkg = dest / str(REPO).lstrip("/") / "bootagent"
    for rel in (
        "boot/main.pyc",
        "boot/agent.pyc",
        "tui/app.pyc",
        "tui/lines.pyc",
        "zfs/backend.pyc",
        "config.pyc",
    ):
        assert (pkg / rel).is_file(), rel
    assert (pkg / "zfs/lua/destroy.lua").is_file()
    dist = dest / "usr/lib/python3/dist-packages"
    for mod in (
        "libzfs_core/__init__.pyc",
        "pyudev/__init__.pyc",
        "blessed/__init__.pyc",
        "yaml/__init__.pyc",
    ):
        assert (dist / mod).is_file(), mod
    assert not list(dest.rglob("*.py")), "sources are not shipped"


def test_lazy_imports_and_codecs_are_there(staged: tuple[Path, list[str]]) -> None:
    dest, _ = staged
    stdlib = next(dest.glob("usr/lib/python3.*"))
    for mod in (
        "encodings/utf_8_sig.pyc",
        "encodings/idna.pyc",
        "ctypes/util.pyc",
        "shutil.pyc",
        "curses/__init__.pyc",
    ):
        assert (stdlib / mod).is_file(), mod
    assert (stdlib / "lib-dynload").is_dir()


def test_terminfo_and_binaries(staged: tuple[Path, list[str]]) -> None:
    dest, elf = staged
    for entry in ("l/linux", "v/vt100", "v/vt102", "v/vt220"):
        assert (dest / "lib/terminfo" / entry).is_file(), entry
    assert any(p.endswith("/python3.11") for p in elf)
    assert any("_curses" in p for p in elf)
    assert any(p.endswith("libzfs_core.so.3") for p in elf)
    assert any(p.endswith("libudev.so.1") for p in elf)


def test_grubenv_conf_is_empty_on_zfs_or_unknown(tmp_path: Path) -> None:
    fake = tmp_path / "findmnt"
    fake.write_text("#!/bin/sh\necho 1234-abcd ext4 /boot/grub\n")
    fake.chmod(0o755)
    assert imagefiles.grubenv_conf("/boot/grub/grubenv", findmnt=str(fake)) == (
        "GRUBENV_UUID=1234-abcd\nGRUBENV_FILE=grubenv\n"
    )
    fake.write_text("#!/bin/sh\necho - zfs /\n")
    assert imagefiles.grubenv_conf("/boot/grub/grubenv", findmnt=str(fake)) == ""
    assert imagefiles.grubenv_conf("/boot/grub/grubenv", findmnt=str(tmp_path / "missing")) == ""


def test_boot_pool_conf_names_the_pool_of_a_boot_half(tmp_path: Path) -> None:
    """The image records the HOWTO's boot pool when /boot is <pool>/BOOT/<name> on another pool than /."""
    fake = tmp_path / "findmnt"

    def answers(root: str, boot: str) -> None:
        fake.write_text(f'#!/bin/sh\ncase "$*" in *"--target /boot") echo {boot};; *) echo {root};; esac\n')
        fake.chmod(0o755)

    answers("rpool/ROOT/debian zfs", "bpool/BOOT/debian zfs")
    assert imagefiles.boot_pool_conf("BOOT", findmnt=str(fake)) == "BOOT_POOL=bpool\n"
    assert imagefiles.boot_pool_conf("boot", findmnt=str(fake)) == ""  # another container: not a pair
    answers("rpool/ROOT/debian zfs", "rpool/ROOT/debian zfs")  # /boot inside the environment
    assert imagefiles.boot_pool_conf("BOOT", findmnt=str(fake)) == ""
    answers("rpool/ROOT/debian zfs", "/dev/vda2 ext4")  # a plain /boot partition
    assert imagefiles.boot_pool_conf("BOOT", findmnt=str(fake)) == ""
    assert imagefiles.boot_pool_conf("BOOT", findmnt=str(tmp_path / "missing")) == ""


def _copy_with_libraries(path: str, dest: Path) -> None:
    """What initramfs-tools' copy_exec does: the file and the shared libraries ldd names."""
    import shutil
    import subprocess

    todo = [path]
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
    todo += [w for w in out.split() if w.startswith("/")]
    for f in todo:
        target = dest / f.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


def test_the_staged_tree_runs_on_its_own(staged: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Like the initramfs: only what was staged, nothing of the host's Python. Runs the agent's code paths."""
    import os
    import shutil
    import subprocess

    dest, elf = staged
    root = tmp_path / "root"
    shutil.copytree(dest, root, symlinks=True)
    for f in elf:
        _copy_with_libraries(f, root)
    (root / "tmp").mkdir(exist_ok=True)
    python = next(p for p in elf if p.endswith("/python3.11"))
    code = (
        "import sys; sys.path[:0] = [" + repr(str(REPO)) + ", '/usr/lib/python3/dist-packages']\n"
        "import bootagent.boot.main, bootagent.tui.launch\n"
        "from bootagent.boot.imagefiles import exercise\n"
        "exercise(); print('staged tree OK')\n"
    )
    result = subprocess.run(
        ["/usr/sbin/chroot", str(root), python, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TERMINFO": "/lib/terminfo", "LC_ALL": "C", "HOME": "/"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "staged tree OK"
    assert os.geteuid() == 0  # chroot needs root: the test bed and CI run as root
