"""Where the boot choice is kept: a grubenv that is not on GRUB's partition is never written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.bootstate import BootStore
from bootagent.grubenv import GrubenvError, GrubenvFile
from tests.fakes import reference_pool


def store_at(tmp_path: Path, table: str) -> BootStore:
    (tmp_path / "boot" / "grub").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(table.replace("ROOTDIR", str(tmp_path)))
    return BootStore(reference_pool(), GrubenvFile(tmp_path / "boot/grub/grubenv"), mounts_path=str(mounts))


def test_a_grubenv_on_the_root_dataset_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    """/boot/grub's partition not mounted (yet): /boot/grub is then the root dataset's own directory, and a
    change written there would never reach GRUB."""
    store = store_at(tmp_path, "rpool/ROOT/beta ROOTDIR zfs rw,xattr 0 0\nproc /proc proc rw 0 0\n")
    bootfs = store.zfs.bootfs  # type: ignore[attr-defined]
    assert store.on_zfs() == "rpool/ROOT/beta"
    with pytest.raises(GrubenvError, match=r"is on ZFS \(rpool/ROOT/beta\)") as exc:
        store.set_default("rpool", "rpool/ROOT/alpha", "alpha")
    assert "/boot/grub" in (exc.value.hint or "")
    with pytest.raises(GrubenvError):
        store.set_once("alpha")
    assert not (tmp_path / "boot/grub/grubenv").exists()
    assert store.zfs.bootfs == bootfs  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "table",
    [
        "rpool/ROOT/beta ROOTDIR zfs rw 0 0\n/dev/vda2 ROOTDIR/boot/grub ext4 rw 0 0\n",
        # the same point mounted twice: the one on top (listed last) is what a write reaches
        "rpool/ROOT/beta ROOTDIR zfs rw 0 0\nrpool/old ROOTDIR/boot/grub zfs rw 0 0\n"
        "/dev/vda2 ROOTDIR/boot/grub vfat rw 0 0\n",
        "/dev/sda1 / ext4 rw 0 0\n",
    ],
    ids=["GRUB's partition on /boot/grub", "mounted over a ZFS mount", "no ZFS at all"],
)
def test_grubs_partition_mounted_is_written(tmp_path: Path, table: str) -> None:
    store = store_at(tmp_path, table)
    assert store.on_zfs() is None
    store.set_default("rpool", "rpool/ROOT/alpha", "alpha")
    assert store.read().default == "alpha"


def test_a_mount_table_that_cannot_be_read_is_no_refusal(tmp_path: Path) -> None:
    (tmp_path / "grub").mkdir()
    store = BootStore(reference_pool(), GrubenvFile(tmp_path / "grub/grubenv"), mounts_path="/nonexistent")
    assert store.on_zfs() is None
    store.set_once("alpha")
    assert store.read().once == "alpha"
