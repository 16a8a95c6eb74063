"""GRUB's environment block: read as GRUB reads it, changed byte for byte as grub-editenv changes it, every
variable bootagent does not own kept; checked both ways against grub-editenv itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootagent.errors import UsageError
from bootagent.grubenv import HEADER, SIZE, GrubenvError, GrubenvFile, edit, empty_block, parse, render

GRUB_EDITENV = shutil.which("grub-editenv")


def editenv(path: Path, *args: bytes) -> subprocess.CompletedProcess[bytes]:
    assert GRUB_EDITENV, "grub-editenv (grub2-common) is installed by scripts/setup-host.sh"
    return subprocess.run(
        # "--": a name may start with '-'
        [os.fsencode(GRUB_EDITENV), b"--", os.fsencode(path), *args],
        capture_output=True,
        check=False,
        env={},
    )


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


def test_too_large_is_refused_and_names_grub_cannot_keep() -> None:
    with pytest.raises(UsageError, match="no room"):
        render({"x": "y" * 1100})
    for name in ("", "a=b", "#x", "a\nb", "a\0b"):
        with pytest.raises(UsageError):
            render({name: "1"})
    render({"saved-entry.x y": "1"})  # GRUB keeps any other name


def test_values_that_are_not_utf8_and_foreign_names_survive_a_write(tmp_path: Path) -> None:
    """The symptom: one value that was not UTF-8 made a write destroy every variable, and names with '-'
    or '.' were dropped."""
    path = tmp_path / "grubenv"
    raw = bytearray(empty_block())
    foreign = HEADER + b"saved_entry=gnulinux-advanced>x\nmy.tool-var=\xff\xfe\x80 raw\nx=1\n"
    raw[: len(foreign)] = foreign
    path.write_bytes(bytes(raw))
    GrubenvFile(path).update({"bootagent_default": "beta", "x": None})
    after = path.read_bytes()
    assert after.startswith(HEADER + b"saved_entry=gnulinux-advanced>x\nmy.tool-var=\xff\xfe\x80 raw\n")
    assert b"bootagent_default=beta\n" in after
    assert b"\nx=1" not in after
    env = parse(after)
    assert env.get("my.tool-var") == "\udcff\udcfe\udc80 raw"
    assert not env.damaged


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"garbage" * 200,
        HEADER + b"no equals sign here" + b"#" * 900,
        HEADER + b"short=1",
        HEADER + b"tail=not terminated" + b"#" * 10,
    ],
)
def test_damaged_blocks_are_flagged_never_raise(block: bytes) -> None:
    assert parse(block).damaged


def test_what_grub_reads_of_a_damaged_block_is_kept() -> None:
    env = parse(HEADER + b"bootagent_default=beta\nbroken" + b"#" * 800)
    assert env.damaged
    assert env.get("bootagent_default") == "beta"


def test_a_damaged_file_is_kept_beside_the_new_block(tmp_path: Path) -> None:
    path = tmp_path / "grubenv"
    torn = HEADER + b"saved_entry=1\nbootagent_default=alpha\nhalf-writ"
    path.write_bytes(torn)
    GrubenvFile(path, clock=0).update({"bootagent_once": "gamma"})
    env = parse(path.read_bytes())
    assert not env.damaged
    assert env.values == {"saved_entry": "1", "bootagent_default": "alpha", "bootagent_once": "gamma"}
    assert (tmp_path / "grubenv.damaged-19700101-000000").read_bytes() == torn


def test_file_missing_reads_empty_and_is_created(tmp_path: Path) -> None:
    f = GrubenvFile(tmp_path / "grubenv")
    assert f.read().values == {}
    assert not f.read().damaged
    f.update({"bootagent_default": "beta"})
    assert len((tmp_path / "grubenv").read_bytes()) == SIZE


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


# --- against grub-editenv ---------------------------------------------------------------------------------
names = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"=" not in b and b"\0" not in b and b"\n" not in b and not b.startswith(b"#")
)
values = st.binary(max_size=40).filter(lambda b: b"\0" not in b)
ops = st.lists(st.tuples(names, st.one_of(st.none(), values)), min_size=1, max_size=12)


def _apply_with_grub(path: Path, op: tuple[bytes, bytes | None]) -> bool:
    name, value = op
    if value is None:
        return editenv(path, b"unset", name).returncode == 0
    return editenv(path, b"set", name + b"=" + value).returncode == 0


@pytest.mark.subprocess
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setup=ops, changes=ops)
def test_every_change_writes_the_bytes_grub_editenv_writes(
    setup: list[tuple[bytes, bytes | None]], changes: list[tuple[bytes, bytes | None]], tmp_path: Path
) -> None:
    """The same block edited by grub-editenv and by bootagent, change after change: byte-identical files;
    and what bootagent parses is what was set."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for p in (ours, theirs):
        p.unlink(missing_ok=True)
        assert editenv(p, b"create").returncode == 0
    for op in setup:  # a block made by GRUB's own tool, with whatever names and bytes
        if not _apply_with_grub(theirs, op):
            break
    ours.write_bytes(theirs.read_bytes())
    expected: dict[str, bytes | None] = {}
    for op in changes:
        name, value = op
        grub_ok = _apply_with_grub(theirs, op)
        key = name.decode("utf-8", "surrogateescape")
        change = {key: None if value is None else value.decode("utf-8", "surrogateescape")}
        try:
            new = edit(ours.read_bytes(), change)
        except UsageError:
            assert not grub_ok, "bootagent refused a change grub-editenv made"
            continue
        assert grub_ok, "grub-editenv refused a change bootagent made"
        ours.write_bytes(new)
        assert ours.read_bytes() == theirs.read_bytes()
        expected[key] = value
    env = parse(ours.read_bytes())
    assert not env.damaged
    for key, value in expected.items():
        got = env.get(key)
        if value is None:
            continue
        assert got is not None
        assert got.encode("utf-8", "surrogateescape") == value


@pytest.mark.subprocess
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.dictionaries(names.filter(lambda b: b"\n" not in b), values.filter(lambda b: b"\n" not in b)))
def test_grub_editenv_reads_what_bootagent_writes(pairs: dict[bytes, bytes], tmp_path: Path) -> None:
    path = tmp_path / "grubenv"
    path.unlink(missing_ok=True)
    changes = {
        n.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape") for n, v in pairs.items()
    }
    try:
        GrubenvFile(path).update(changes)
    except UsageError:
        needed = sum(len(n) + len(v.replace(b"\\", b"\\\\")) + 2 for n, v in pairs.items())
        assert needed > SIZE - len(HEADER)
        return
    listed = editenv(path, b"list")
    assert listed.returncode == 0, listed.stderr
    got = dict(line.split(b"=", 1) for line in listed.stdout.split(b"\n") if line)
    assert got == pairs
