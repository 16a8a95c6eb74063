"""`bootagent grub-menu`: the package's own config, the pool as it is, /etc/default/grub as exported."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bootagent.cli.main import main
from bootagent.config import Config, Layout
from bootagent.errors import CommandError
from bootagent.grub.generate import MenuSources, generate, grubenv_place
from bootagent.grub.menu import GrubenvPlace, render
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, howto_pools, reference_pool

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "bootagent" / "data" / "bootagent.yaml"


class Probe:
    """grub-probe and grub-mkrelpath as the system answers them (or failing)."""

    def __init__(
        self, uuid: str = "3c0ffee0-aaaa-4bbb-8ccc-0123456789ab", rel: str = "/", fail: bool = False
    ):
        self.uuid, self.rel, self.fail = uuid, rel, fail
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        self.calls.append(tuple(argv))
        if argv[0] == "sh":  # /etc/default/grub sourced, as grub-mkconfig sources it
            env = "GRUB_CMDLINE_LINUX=console=ttyS1,9600\0GRUB_DISTRIBUTOR=Debian\0PATH=/bin\0"
            return CommandResult(tuple(argv), 0, env, "")
        if self.fail:
            raise CommandError(argv, returncode=1, stderr="grub-probe: error: failed to get canonical path")
        out = self.uuid if argv[0] == "grub-probe" else self.rel
        return CommandResult(tuple(argv), 0, out + "\n", "")


def sources(zfs: FakeZfs, probe: Probe | None = None, **environ: str) -> MenuSources:
    """As update-grub runs the generator: grub-mkconfig has exported its settings (GRUB_DEVICE among them)."""
    return MenuSources(zfs=zfs, runner=probe or Probe(), environ={"GRUB_DEVICE": "/dev/vda3", **environ})


def test_run_by_hand_it_reads_etc_default_grub_as_grub_mkconfig_does() -> None:
    probe = Probe()
    menu = generate(Config(), MenuSources(zfs=reference_pool(), runner=probe, environ={}))
    sourced = [c for c in probe.calls if c[0] == "sh"]
    assert len(sourced) == 1
    assert '. "$f"' in sourced[0][2]
    assert "/etc/default/grub /etc/default/grub.d/*.cfg" in sourced[0][2]
    text = render(menu)
    assert "console=ttyS1,9600" in text
    assert "'Debian GNU/Linux, boot environment alpha'" in text
    # under update-grub the exported settings are taken as they are
    probe = Probe()
    generate(Config(), sources(reference_pool(), probe))
    assert not [c for c in probe.calls if c[0] == "sh"]


def test_the_default_config_finds_the_pool_of_the_running_root() -> None:
    """`pool: auto` (the package's own config) is the pool that holds /, never a pool called 'auto'."""
    from bootagent.config import load_config

    config = load_config(DEFAULT_CONFIG, strict=True).config
    assert config.pool is None
    menu = generate(config, sources(reference_pool(), GRUB_CMDLINE_LINUX="console=ttyS0,115200"))
    assert menu.usable
    assert menu.environments == ("alpha", "beta", "gamma")
    text = render(menu)
    assert "set bootagent_pool=rpool" in text
    assert "set bootagent_fallback=beta" in text
    assert "search --no-floppy --fs-uuid --set=bootagent_dev 1f2e3d4c5b6a7980" in text
    assert "search --no-floppy --fs-uuid --set=bootagent_envdev 3c0ffee0-aaaa-4bbb-8ccc-0123456789ab" in text
    assert "console=ttyS0,115200" in text


def test_without_a_zfs_root_the_one_pool_with_environments_is_used() -> None:
    zfs = reference_pool()
    del zfs.mounted["/"]
    assert generate(Config(), sources(zfs)).usable
    zfs.nodes.pop("rpool/ROOT/alpha")
    zfs.nodes = {k: v for k, v in zfs.nodes.items() if not k.startswith("rpool/ROOT")}
    menu = generate(Config(), sources(zfs))
    assert not menu.usable
    assert any("no imported pool has <pool>/ROOT" in w for w in menu.warnings)
    assert any("GRUB's ordinary entries are kept" in w for w in menu.warnings)


def test_the_layout_root_and_the_pool_come_from_the_config() -> None:
    zfs = reference_pool()
    for name in list(zfs.nodes):
        if name.startswith("rpool/ROOT"):
            node = zfs.nodes.pop(name)
            node.name = name.replace("rpool/ROOT", "rpool/sys")
            zfs.nodes[node.name] = node
    zfs.bootfs = "rpool/sys/gamma"
    config = Config(pool="rpool", layout=Layout(root="sys"))
    text = render(generate(config, sources(zfs)))
    assert "/ROOT/" not in text
    assert 'root=ZFS="${bootagent_pool}"/sys/' in text
    assert "set bootagent_fallback=gamma" in text


def test_hand_made_names_are_left_out_with_a_warning() -> None:
    zfs = reference_pool()
    zfs.add_fs("rpool/ROOT/my test", mountpoint="/", canmount="noauto")
    zfs.add_fs("rpool/ROOT/a:b", mountpoint="/", canmount="noauto")
    zfs.bootfs = "rpool/ROOT/my test"
    menu = generate(Config(), sources(zfs))
    assert menu.environments == ("alpha", "beta", "gamma", "a:b")
    assert any("'my test' gets no GRUB entry" in w for w in menu.warnings)
    assert "set bootagent_fallback=alpha" in render(menu)


def test_grubenv_place_from_grub_probe() -> None:
    warnings: list[str] = []
    probe = Probe(rel="")  # what grub-mkrelpath prints for the root of a file system (/boot/grub here)
    assert grubenv_place("/boot/grub/grubenv", probe, warnings) == GrubenvPlace(
        uuid="3c0ffee0-aaaa-4bbb-8ccc-0123456789ab", path="/grubenv"
    )
    assert probe.calls == [("grub-probe", "--target=fs_uuid", "/boot/grub"), ("grub-mkrelpath", "/boot/grub")]
    assert grubenv_place("/boot/efi/EFI/debian/grubenv", Probe(rel="/EFI/debian"), warnings).path == (
        "/EFI/debian/grubenv"
    )
    assert warnings == []
    assert grubenv_place("/boot/grub/grubenv", Probe(fail=True), warnings) == GrubenvPlace()
    assert "using GRUB's $prefix/grubenv" in warnings[0]


def test_a_pool_that_cannot_be_listed_gives_no_menu() -> None:
    zfs = reference_pool()
    zfs.pool = "other"
    menu = generate(Config(pool="rpool"), sources(zfs))
    assert not menu.usable
    assert any("cannot list the boot environments of rpool" in w for w in menu.warnings)


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    def invoke(*argv: str, zfs: FakeZfs | None = None, config: str | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        pool = zfs or reference_pool()
        cfg = tmp_path / "c.yaml"
        cfg.write_text(config if config is not None else "")
        code = main(["--config", str(cfg), *argv], backend=lambda: pool, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    return invoke


def test_the_verb_prints_the_menu_and_a_bad_config_is_only_a_warning(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bootagent.grub.generate.run", Probe())
    monkeypatch.setattr("bootagent.grub.generate.MenuSources", _sources_with_probe)
    code, out, err = cli("grub-menu")
    assert code == 0
    assert "menuentry" in out
    code, out, err = cli("grub-menu", config="pool: [broken\nretention: 7\n")
    assert code == 0
    assert "menuentry" in out
    assert "bootagent grub-menu: warning: configuration:" in err


def _sources_with_probe(zfs: FakeZfs, **_kw: Any) -> MenuSources:
    return MenuSources(zfs=zfs, runner=Probe(), environ={})


# --- the HOWTO's two pools --------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_on_two_pools_the_kernels_come_from_each_environments_boot_half(tmp_path: Path) -> None:
    """The package's own config on a HOWTO machine: the boot pool is found, every file GRUB loads is read
    from bpool/BOOT/<name>, the root from rpool/ROOT/<name>; the text is valid GRUB script."""
    from bootagent.config import load_config
    from tests.unit.grub.test_menu import grub_script_check, linux_lines

    config = load_config(DEFAULT_CONFIG, strict=True).config
    zfs = howto_pools()
    menu = generate(config, sources(zfs))
    assert menu.usable
    assert menu.warnings == ()
    text = render(menu)
    grub_script_check(text, tmp_path)
    assert "search --no-floppy --fs-uuid --set=bootagent_bootdev 1f2e3d4c5b6a7980" in text
    assert "search --no-floppy --label --set=bootagent_bootdev bpool" in text
    assert "export bootagent_bootdev" in text
    kernels = [c[1] for c in linux_lines(text)]
    assert "(${bootagent_bootdev})/BOOT/alpha@/vmlinuz" in kernels
    assert all(k.startswith("(${bootagent_bootdev})/BOOT/") for k in kernels), kernels
    assert "/boot/vmlinuz" not in text.replace("/boot/bootagent.img", "")
    assert "root=ZFS=${bootagent_pool}/ROOT/alpha" in text.replace('"', "")
    assert '[ -s ("${bootagent_bootdev}")/BOOT/"${bootagent_be}"@/bootagent.img ]' in text


def test_on_two_pools_a_missing_half_gets_no_entry_and_a_reason() -> None:
    zfs = howto_pools()
    for name in [n for n in zfs.nodes if n.startswith("bpool/BOOT/gamma")]:
        del zfs.nodes[name]
    menu = generate(Config(), sources(zfs))
    assert menu.environments == ("alpha", "beta")
    assert menu.warnings == (
        "boot environment 'gamma' gets no GRUB entry: its /boot half bpool/BOOT/gamma does not exist",
    )


def test_on_two_pools_an_unreadable_boot_pool_gives_no_menu() -> None:
    """Entries that would load kernels from the root pool's empty /boot are worse than GRUB's own."""
    zfs = howto_pools()
    menu = generate(Config(boot_pool="bpool2"), sources(zfs))
    assert not menu.usable
    assert render(menu) == ""
    assert (
        menu.warnings[0] == "cannot list the /boot halves in bpool2/BOOT: dataset does not exist: bpool2/BOOT"
    )


def test_the_entry_limit_comes_from_the_config_and_keeps_the_last_known_good() -> None:
    zfs = reference_pool()
    for i in range(30):
        zfs.add_fs(f"rpool/ROOT/extra{i:02d}", mountpoint="/", canmount="noauto")
    zfs.nodes["rpool/ROOT/alpha"].user_props["org.bootagent:last-good"] = "1700000000"
    menu = generate(Config(), sources(zfs))  # the default: 20
    assert len(menu.environments) == 22
    assert menu.environments[:2] == ("alpha", "beta")  # the last-known-good, and the pool's bootfs
    assert menu.environments[2:] == tuple(f"extra{i:02d}" for i in range(10, 30))
    assert menu.more == 11
    assert "11 older boot environments: in the bootagent recovery menu" in render(menu)
    assert generate(Config(grub_entries=0), sources(zfs)).more == 0
