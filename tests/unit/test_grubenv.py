"""GRUB environment block: exact format, validation of damaged blocks, atomic updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.errors import UsageError
from bootagent.grubenv import HEADER, SIZE, GrubenvError, GrubenvFile, parse, render


def test_render_is_exactly_1024_bytes_padded_with_hashes() -> None:
    block = render({"bootagent_default": "beta", "saved_entry": "0"})
    assert len(block) == SIZE
    assert block.startswith(HEADER + b"bootagent_default=beta\nsaved_entry=0\n#")
    assert block.endswith(b"#")


def test_round_trip_with_escapes() -> None:
    values = {"a": "back\\slash", "b": "multi\nline", "c": "ünïcode"}
    env = parse(render(values))
    assert dict(env.values) == values
    assert not env.damaged


def test_matches_grub_editenv_layout() -> None:
    # what `grub-editenv F create; grub-editenv F set next_entry=1` writes
    block = HEADER + b"next_entry=1\n" + b"#" * (SIZE - len(HEADER) - 13)
    env = parse(block)
    assert env.values == {"next_entry": "1"}
    assert not env.damaged


def test_too_large_is_refused() -> None:
    with pytest.raises(UsageError, match="holds 1024"):
        render({"x": "y" * 1100})


def test_bad_variable_name_is_refused() -> None:
    with pytest.raises(UsageError):
        render({"bad name": "1"})


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"garbage" * 200,
        HEADER + b"ok=1\n\xff\xfe\n" + b"#" * 900,
        HEADER + b"no equals sign here\n" + b"#" * 900,
        HEADER + b"short=1\n",
    ],
)
def test_damaged_blocks_are_flagged_never_raise(block: bytes) -> None:
    assert parse(block).damaged


def test_damaged_block_keeps_what_it_can_read() -> None:
    env = parse(HEADER + b"bootagent_default=beta\n!!!\n" + b"#" * 800)
    assert env.damaged
    assert env.get("bootagent_default") == "beta"


def test_file_missing_reads_empty(tmp_path: Path) -> None:
    env = GrubenvFile(tmp_path / "grubenv").read()
    assert env.values == {}
    assert not env.damaged


def test_update_keeps_other_variables_and_unsets(tmp_path: Path) -> None:
    f = GrubenvFile(tmp_path / "grubenv")
    f.update({"saved_entry": "2", "bootagent_once": "alpha"})
    f.update({"bootagent_once": None, "bootagent_default": "beta"})
    data = (tmp_path / "grubenv").read_bytes()
    assert len(data) == SIZE
    assert parse(data).values == {"saved_entry": "2", "bootagent_default": "beta"}
    assert [p.name for p in tmp_path.iterdir()] == ["grubenv"]  # no temp files left behind


def test_update_without_directory_explains(tmp_path: Path) -> None:
    with pytest.raises(GrubenvError) as exc:
        GrubenvFile(tmp_path / "missing" / "grubenv").update({"a": "1"})
    assert exc.value.hint is not None
    assert "mount the GRUB partition" in exc.value.hint
