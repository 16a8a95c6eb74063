"""grub.d/42_bootagent run against a temporary root (no VM needed, but it belongs with the GRUB scenarios)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "grub.d" / "42_bootagent"

pytestmark = pytest.mark.vm


def generate(root: Path, **env: str) -> str:
    """Run the generator with zpool/zfs shadowed by failing fakes (no pool is reachable)."""
    fakes = root / "fake-bin"
    fakes.mkdir(exist_ok=True)
    for tool in ("zpool", "zfs"):
        (fakes / tool).write_text("#!/bin/sh\nexit 1\n")
        (fakes / tool).chmod(0o755)
    full = {"PATH": f"{fakes}:/usr/sbin:/usr/bin:/sbin:/bin", "BOOTAGENT_ROOT": str(root), **env}
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env=full, capture_output=True, text=True, check=True
    ).stdout


def test_pool_comes_from_the_config_file_under_the_root_prefix(tmp_path: Path) -> None:
    config = tmp_path / "etc/bootagent/bootagent.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("# test\npool: tank\ngrubenv: /boot/grub/grubenv\n")
    out = generate(tmp_path, BOOTAGENT_DEFAULT_BE="blue", BOOTAGENT_BES="red blue")
    assert "set bootagent_pool='tank'" in out
    assert "set bootagent_fallback='blue'" in out
    assert 'load_env -f "$bootagent_env" bootagent_default bootagent_once' in out
    assert "root=ZFS=$bootagent_pool/ROOT/${bootagent_be}" in out
    assert "bootagent=menu" in out
    assert "menuentry 'boot environment red'" not in out  # titles are double-quoted
    assert 'menuentry "boot environment red"' in out


def test_without_a_default_the_first_boot_environment_is_baked_in(tmp_path: Path) -> None:
    out = generate(tmp_path, BOOTAGENT_POOL="rpool", BOOTAGENT_BES="alpha beta")
    assert "set bootagent_fallback='alpha'" in out


def test_invalid_names_are_ignored(tmp_path: Path) -> None:
    out = generate(tmp_path, BOOTAGENT_POOL="rpool", BOOTAGENT_BES="ok bad;name", BOOTAGENT_DEFAULT_BE="x y")
    assert "set bootagent_fallback='ok'" in out
    assert "bad;name" not in out


def test_no_pool_prints_nothing(tmp_path: Path) -> None:
    assert generate(tmp_path) == ""


def test_output_is_valid_grub_script(tmp_path: Path) -> None:
    assert shutil.which("grub-script-check"), "grub2-common is part of the VM tier's host set-up"
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(generate(tmp_path, BOOTAGENT_POOL="rpool", BOOTAGENT_BES="alpha beta gamma"))
    subprocess.run(["grub-script-check", str(cfg)], check=True, env={"PATH": os.environ["PATH"]})


def entries(out: str) -> dict[str, str]:
    """menuentry id -> its body."""
    found: dict[str, str] = {}
    for block in out.split("menuentry ")[1:]:
        ident = block.split("--id '", 1)[1].split("'", 1)[0]
        found[ident] = block
    return found


def test_only_the_agent_entries_load_the_agent_image(tmp_path: Path) -> None:
    """An ordinary boot reads one initramfs; the recovery entry adds /boot/bootagent.img after it when the
    environment has one, and boots on with a message when it has not."""
    boot = "($bootagent_dev)/ROOT/${bootagent_be}@/boot"
    found = entries(generate(tmp_path, BOOTAGENT_POOL="rpool", BOOTAGENT_BES="alpha beta"))
    ordinary = ("bootagent-default", "bootagent-be-alpha", "bootagent-be-beta")
    assert set(found) == {*ordinary, "bootagent-recovery"}
    for ident in ordinary:
        assert "bootagent.img" not in found[ident]
        assert found[ident].count("initrd ") == 1
    recovery = found["bootagent-recovery"]
    assert f'if [ -s "{boot}/bootagent.img" ]' in recovery
    assert f"initrd {boot}/initrd.img {boot}/bootagent.img" in recovery
    assert "has no /boot/bootagent.img" in recovery
