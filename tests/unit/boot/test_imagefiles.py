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
    assert (pkg / "zfs/lua/list_tree.lua").is_file()
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
