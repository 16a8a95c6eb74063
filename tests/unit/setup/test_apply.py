"""Carrying out a setup proposal (bootagent.setup.apply): the package's own config file edited in place,
validated, written atomically; the state dataset and grubenv made; update-grub; twice is a no-op."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bootagent.config import load_config
from bootagent.errors import BootagentError, CommandError, RefusedError
from bootagent.runner import CommandResult
from bootagent.setup.apply import apply, edit_config
from bootagent.setup.inspect import Setting, propose
from tests.fakes import FakeZfs
from tests.unit.setup.test_inspect import recorded

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "bootagent" / "data" / "bootagent.yaml"


class Commands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        self.calls.append(tuple(argv))
        if argv[0] == "grub-editenv":
            Path(argv[1]).write_text("# GRUB Environment Block\n".ljust(1024, "#"))
        return CommandResult(tuple(argv), 0, "", "")


def test_edit_keeps_every_comment_and_changes_only_the_values() -> None:
    text = DEFAULT_CONFIG.read_text()
    settings = [Setting("boot_pool", "bpool", "x"), Setting("grubenv", "/boot/efi/grubenv", "y"),
                Setting("layout.boot_root", "BOOTS", "z")]  # fmt: skip
    new = edit_config(text, settings)
    old_lines, new_lines = text.splitlines(), new.splitlines()
    for line in ("boot_pool: bpool", "grubenv: /boot/efi/grubenv", "  boot_root: BOOTS"):
        assert line in new_lines
    for line in ("boot_pool: auto", "grubenv: /boot/grub/grubenv", "  boot_root: BOOT"):
        assert line not in new_lines
    comments = iter(line for line in new_lines if line.startswith("#"))
    assert all(line in comments for line in old_lines if line.startswith("#"))  # all kept, in order
    assert len(new_lines) == len(old_lines)
    assert edit_config(new, settings) == new  # a second time: the same text


def test_edit_adds_a_key_the_file_does_not_have() -> None:
    new = edit_config(
        "pool: auto\n", [Setting("boot_pool", "bpool", "the boot pool"), Setting("layout.root", "OS", "r")]
    )
    assert new == "pool: auto\n\n# the boot pool\nboot_pool: bpool\n\nlayout:\n  root: OS\n"


def test_setup_of_the_howto_layout_then_again(tmp_path: Path) -> None:
    config = tmp_path / "bootagent.yaml"
    config.write_text(DEFAULT_CONFIG.read_text())
    (tmp_path / "efi").mkdir()  # the ESP's mount point
    grubenv = tmp_path / "efi" / "grubenv"
    zfs, commands = FakeZfs(), Commands()
    proposal = propose(recorded("howto"), load_config(config, strict=True).config, exists=lambda _p: False)
    proposal = proposal.__class__(**{**proposal.__dict__, "grubenv": str(grubenv)})
    done = apply(proposal, config_path=config, zfs=zfs, runner=commands)
    assert done == [
        f"wrote {config} (boot_pool, grubenv)",
        "created rpool/bootagent at /var/lib/bootagent",
        f"created GRUB's environment block {grubenv}",
        "rebuilt the agent's image (bootagent-mkinitrd)",
        "regenerated GRUB's menu (update-grub)",
    ]
    assert commands.calls == [
        ("grub-editenv", str(grubenv), "create"),
        ("bootagent-mkinitrd",),
        ("update-grub",),
    ]
    loaded = load_config(config, strict=True).config
    assert (loaded.boot_pool, loaded.grubenv, loaded.customer_datasets) == ("bpool", "/boot/efi/grubenv", ())
    assert zfs.nodes["rpool/bootagent"].mountpoint == "/var/lib/bootagent"
    # twice: the config now says it all; the state dataset and the grubenv exist
    facts = recorded("howto")
    again = propose(facts, loaded, exists=lambda _p: True)
    again = again.__class__(**{**again.__dict__, "state_dataset": None})
    assert apply(again, config_path=config, zfs=zfs, runner=commands) == []
    assert len(commands.calls) == 3  # nothing more was run


def test_a_refused_proposal_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "bootagent.yaml"
    config.write_text("pool: auto\n")
    facts = recorded("testbed", mounts="/ /dev/vda1 ext4 1234\n")
    proposal = propose(facts, load_config(config, strict=True).config)
    with pytest.raises(RefusedError, match="not on ZFS"):
        apply(proposal, config_path=config, zfs=FakeZfs(), runner=Commands())
    assert config.read_text() == "pool: auto\n"


def test_an_edit_that_would_not_load_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    config = tmp_path / "bootagent.yaml"
    config.write_text("pool: auto\n")
    proposal = propose(recorded("howto"), load_config(config, strict=True).config)
    bad = proposal.__class__(
        **{**proposal.__dict__, "settings": (Setting("boot_pool", "no such pool!", "x"),)}
    )
    with pytest.raises(RefusedError, match="would not be valid"):
        apply(bad, config_path=config, zfs=FakeZfs(), runner=Commands())
    assert config.read_text() == "pool: auto\n"


def test_edit_keeps_inline_comments_indentation_and_a_header_comment() -> None:
    text = "boot_pool: auto  # the HOWTO's\nlayout:  # where things are\n    root: ROOT\n# end\n"
    new = edit_config(text, [Setting("boot_pool", "bpool", "x"), Setting("layout.boot_root", "BOOT2", "y")])
    assert new == (
        "boot_pool: bpool  # the HOWTO's\nlayout:  # where things are\n    boot_root: BOOT2\n    root: ROOT\n"
        "# end\n"
    )
    assert load_ok(new)


def test_edit_with_nothing_to_set_leaves_the_text_as_it_is() -> None:
    for text in ("", "pool: auto", "pool: auto\r\n"):
        assert edit_config(text, []) == text
    assert edit_config("pool: auto\r\n", [Setting("pool", "tank", "x")]) == "pool: tank\r\n"


def test_a_failure_half_way_says_what_was_already_changed(tmp_path: Path) -> None:
    config = tmp_path / "bootagent.yaml"
    config.write_text(DEFAULT_CONFIG.read_text())
    proposal = propose(recorded("howto"), load_config(config, strict=True).config)

    def failing(argv: Sequence[str], **_kw: Any) -> CommandResult:
        raise CommandError(argv, returncode=1, stderr="grub-mkconfig: error")

    with pytest.raises(
        BootagentError, match=r"already changed: wrote .*bootagent.yaml \(boot_pool, grubenv\)"
    ):
        apply(proposal, config_path=config, zfs=FakeZfs(), runner=failing)


def load_ok(text: str) -> bool:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(text)
    try:
        return not load_config(fh.name, strict=True).problems
    finally:
        Path(fh.name).unlink()
