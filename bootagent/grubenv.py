"""GRUB's environment block: read it as GRUB reads it, change it as GRUB changes it, write it atomically.

The block (grub-core/lib/envblk.c) is a header line, then `name=value` lines -- a value escapes backslash and
newline with a backslash; a name is any bytes up to the first `=` -- then `#` padding to the file's size
(1024 bytes as grub-editenv creates it). GRUB's `save_env` rewrites it in place and refuses on ZFS, so the
writable block lives on a plain partition. It has no checksum: every value read is validated by its user.

bootagent owns a few variables and keeps every other one byte for byte: a change edits the block the way
`grub_envblk_set` and `grub_envblk_delete` do (the same bytes `grub-editenv` would write), on the raw bytes,
so values that are not UTF-8 and names with `-` or `.` (GRUB's own `saved_entry`, other tools' variables) are
never touched. A block GRUB cannot read (wrong header, no line end before the padding) is reported as
damaged; before bootagent writes a new one, the damaged file is kept beside it (`grubenv.damaged-TIME`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bootagent.errors import SystemFailure, UsageError
from bootagent.fsutil import atomic_write

LOG = logging.getLogger(__name__)

SIZE = 1024
HEADER = b"# GRUB Environment Block\n"
PAD = ord("#")
NEWLINE = ord("\n")
BACKSLASH = ord("\\")
EQUALS = ord("=")

# The variables bootagent owns (GRUB's menu loads only these, with load_env's whitelist).
DEFAULT_VAR = "bootagent_default"
ONCE_VAR = "bootagent_once"


class GrubenvError(SystemFailure):
    pass


@dataclass(frozen=True)
class Grubenv:
    values: Mapping[str, str]  # decoded as UTF-8; bytes that are not become surrogates (surrogateescape)
    damaged: bool = False  # GRUB cannot read (all of) the block; values is what it would read

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def name_problem(name: bytes) -> str | None:
    """Why GRUB cannot keep a variable of this name, or None (any bytes but `=`, NUL and a line end; not
    starting with `#`, which GRUB reads as padding)."""
    if not name:
        return "the name is empty"
    if any(b in name for b in (0, EQUALS, NEWLINE)):
        return "the name contains '=', a NUL or a line end"
    if name[0] == PAD:
        return "the name starts with '#'"
    return None


def _find_next_line(buf: bytes | bytearray, p: int, pend: int) -> int:
    while p < pend:
        if buf[p] == BACKSLASH:
            p += 2
        elif buf[p] == NEWLINE:
            break
        else:
            p += 1
    return p + 1


def _escaped(value: bytes) -> bytes:
    return value.replace(b"\\", b"\\\\").replace(b"\n", b"\\\n")


def parse(block: bytes) -> Grubenv:
    """What GRUB's load_env reads (grub_envblk_iterate); never raises."""
    if not block.startswith(HEADER):
        return Grubenv({}, damaged=True)
    values: dict[str, str] = {}
    p, pend = len(HEADER), len(block)
    damaged = False
    while p < pend:
        if block[p] != PAD:
            name_end = block.find(b"=", p)
            if name_end < 0:
                damaged = True
                break
            q = name_end + 1
            while q < pend and block[q] != NEWLINE:
                q += 2 if block[q] == BACKSLASH else 1
            if q >= pend:
                damaged = True
                break
            values[_decode(block[p:name_end])] = _decode(_unescape(block[name_end + 1 : q]))
            p = q
        p = _find_next_line(block, p, pend)
    if not damaged:
        damaged = _free_space(block) is None
    return Grubenv(values, damaged=damaged)


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == BACKSLASH and i + 1 < len(raw):
            i += 1
        out.append(raw[i])
        i += 1
    return bytes(out)


def _free_space(buf: bytes | bytearray) -> int | None:
    """Where the padding starts (after the last line end), or None when the block is broken."""
    space = len(buf) - 1
    while space >= 0 and buf[space] == PAD:
        space -= 1
    if space < len(HEADER) - 1 or buf[space] != NEWLINE:
        return None
    return space + 1


class _Result(Enum):
    OK = "ok"
    NO_SPACE = "no space"
    BROKEN = "broken"


def set_var(buf: bytearray, name: bytes, value: bytes) -> _Result:
    """grub_envblk_set, byte for byte."""
    nl = len(name)
    esc = _escaped(value)
    vl = len(esc)
    pend = len(buf)
    space = _free_space(buf)
    if space is None:
        return _Result.BROKEN
    p = len(HEADER)
    found = False
    while p + nl + 1 < space:
        if buf[p : p + nl] == name and buf[p + nl] == EQUALS:
            p += nl + 1
            length = 0
            while p + length < pend and buf[p + length] != NEWLINE:
                length += 2 if buf[p + length] == BACKSLASH else 1
            if p + length >= pend:
                return _Result.BROKEN
            if pend - space < vl - length:
                return _Result.NO_SPACE
            if vl < length:
                buf[p + vl : pend - (length - vl)] = buf[p + length : pend]
                start, stop = space + length - vl, space + 2 * (length - vl)
                buf[max(0, start) : min(pend, stop)] = bytes([PAD]) * max(0, min(pend, stop) - max(0, start))
            else:
                buf[p + vl : pend] = buf[p + length : pend - (vl - length)]
            found = True
            break
        p = _find_next_line(buf, p, pend)
    if not found:
        if pend - space < nl + 1 + vl + 1:
            return _Result.NO_SPACE
        buf[space : space + nl] = name
        p = space + nl
        buf[p] = EQUALS
        p += 1
    buf[p : p + vl] = esc
    buf[p + vl] = NEWLINE
    return _Result.OK


def delete_var(buf: bytearray, name: bytes) -> None:
    """grub_envblk_delete, byte for byte."""
    nl = len(name)
    pend = len(buf)
    p = len(HEADER)
    while p + nl + 1 < pend:
        if buf[p : p + nl] == name and buf[p + nl] == EQUALS:
            length = nl + 1
            while p + length < pend:
                if buf[p + length] == NEWLINE:
                    break
                length += 2 if buf[p + length] == BACKSLASH else 1
            if p + length >= pend:
                return
            length += 1
            buf[p : pend - length] = buf[p + length : pend]
            buf[pend - length : pend] = bytes([PAD]) * length
            return
        p = _find_next_line(buf, p, pend)


def empty_block(size: int = SIZE) -> bytearray:
    return bytearray(HEADER + bytes([PAD]) * (size - len(HEADER)))


def edit(block: bytes, changes: Mapping[str, str | None]) -> bytes:
    """The block with `changes` applied (None unsets); every other byte stays. Raises UsageError when a
    name is not one GRUB can keep or the values do not fit; GrubenvError when the block is broken."""
    buf = bytearray(block)
    for name, value in changes.items():
        raw = _encode(name)
        if (problem := name_problem(raw)) is not None:
            raise UsageError(f"invalid GRUB environment variable name {name!r}: {problem}")
        if value is None:
            delete_var(buf, raw)
            continue
        data = _encode(value)
        if b"\0" in data:
            raise UsageError(f"the value of {name} contains a NUL, which GRUB cannot keep")
        result = set_var(buf, raw, data)
        if result is _Result.NO_SPACE:
            raise UsageError(
                f"the GRUB environment block ({len(buf)} bytes) has no room for {name}",
                hint="remove unused variables with grub-editenv FILE unset NAME",
            )
        if result is _Result.BROKEN:
            raise GrubenvError("the GRUB environment block is damaged")
    return bytes(buf)


class GrubenvFile:
    """The block on disk. Writes keep every variable (and byte) bootagent does not own."""

    def __init__(self, path: str | os.PathLike[str], *, clock: float | None = None) -> None:
        self.path = Path(path)
        self._clock = clock

    def _read_raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def read(self) -> Grubenv:
        try:
            block = self._read_raw()
        except OSError as exc:
            LOG.warning("cannot read %s: %s", self.path, exc)
            return Grubenv({}, damaged=True)
        if block is None:
            return Grubenv({})
        env = parse(block)
        if env.damaged:
            LOG.warning("%s is damaged; treating unreadable values as unset", self.path)
        return env

    def writable(self) -> bool:
        return self.path.parent.is_dir() and os.access(self.path.parent, os.W_OK)

    def _keep_damaged(self, block: bytes) -> bytearray:
        """Save the damaged block beside the file, and start a new one holding what GRUB could read of it."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self._clock))
        backup = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        atomic_write(backup, block)
        LOG.warning("%s is damaged: kept it as %s and wrote a new block", self.path, backup)
        fresh = empty_block(max(SIZE, len(block)) if block.startswith(HEADER) else SIZE)
        for name, value in parse(block).values.items():
            raw, data = _encode(name), _encode(value)
            if name_problem(raw) is None and set_var(fresh, raw, data) is not _Result.OK:
                LOG.warning("%s: no room for %s in the new block; it is in %s", self.path, name, backup)
        return fresh

    def update(self, changes: Mapping[str, str | None]) -> Grubenv:
        """Set (value) or unset (None) variables and write the block atomically."""
        if not self.path.parent.is_dir():
            raise GrubenvError(
                f"the GRUB environment directory {self.path.parent} does not exist",
                hint="mount the GRUB partition (e.g. /boot/grub), or set 'grubenv' in the config",
            )
        try:
            block = self._read_raw()
        except OSError as exc:
            raise GrubenvError(f"cannot read {self.path}: {exc.strerror}") from exc
        if block is None:
            base = bytes(empty_block())
        elif parse(block).damaged:
            base = bytes(self._keep_damaged(block))
        else:
            base = block
        new = edit(base, changes)
        try:
            atomic_write(self.path, new)
        except OSError as exc:
            raise GrubenvError(f"cannot write {self.path}: {exc.strerror}") from exc
        return parse(new)


def render(values: Mapping[str, str], size: int = SIZE) -> bytes:
    """A new block holding `values` (what `grub-editenv FILE create` + `set` would write)."""
    return edit(bytes(empty_block(size)), values)
