"""Kernel pairing: which kernel a root tree can boot."""

from __future__ import annotations

from pathlib import Path

from bootagent.boot.kernels import choose_kernel, kernels_in


def tree(tmp_path: Path, *releases: str, modules_only: tuple[str, ...] = ()) -> Path:
    for r in releases:
        (tmp_path / "lib/modules" / r).mkdir(parents=True)
        (tmp_path / "boot").mkdir(exist_ok=True)
        (tmp_path / "boot" / f"vmlinuz-{r}").write_text("k")
        (tmp_path / "boot" / f"initrd.img-{r}").write_text("i")
    for r in modules_only:
        (tmp_path / "lib/modules" / r).mkdir(parents=True)
    return tmp_path


def test_newest_first(tmp_path: Path) -> None:
    t = tree(tmp_path, "6.1.0-9-amd64", "6.12.0-1-amd64", "6.1.0-30-amd64")
    assert [k.release for k in kernels_in(t)] == ["6.12.0-1-amd64", "6.1.0-30-amd64", "6.1.0-9-amd64"]


def test_running_kernel_wins_when_its_modules_are_there(tmp_path: Path) -> None:
    t = tree(tmp_path, "6.1.0-30-amd64", "6.12.0-1-amd64")
    k = choose_kernel(t, running="6.1.0-30-amd64", preferred="6.12.0-1-amd64")
    assert k is not None
    assert k.release == "6.1.0-30-amd64"
    assert k.initrd == str(t / "boot/initrd.img-6.1.0-30-amd64")


def test_other_kernel_when_modules_are_missing(tmp_path: Path) -> None:
    t = tree(tmp_path, "6.12.0-1-amd64", "6.11.0-1-amd64")
    k = choose_kernel(t, running="6.1.0-30-amd64", preferred="6.11.0-1-amd64")
    assert k is not None
    assert k.release == "6.11.0-1-amd64"
    k = choose_kernel(t, running="6.1.0-30-amd64", preferred=None)
    assert k is not None
    assert k.release == "6.12.0-1-amd64"


def test_modules_without_a_kernel_file_do_not_count(tmp_path: Path) -> None:
    t = tree(tmp_path, modules_only=("6.12.0-1-amd64",))
    assert kernels_in(t) == []
    assert choose_kernel(t, running="6.1.0-30-amd64", preferred="6.12.0-1-amd64") is None
