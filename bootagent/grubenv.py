"""GRUB's environment block: parse, validate, and write it atomically.

The block is exactly 1024 bytes: a header line, `name=value` lines (backslash escapes backslash and
newline), padded with '#'. GRUB's save_env rewrites it in place and refuses on ZFS, so the writable block
lives on a plain partition. It has no checksum: every value read is validated by its user, and a damaged
block is reported and treated as empty (never as "good").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bootagent.errors import SystemFailure, UsageError
from bootagent.fsutil import atomic_write

LOG = logging.getLogger(__name__)

SIZE = 1024
HEADER = b"# GRUB Environment Block\n"
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The variables bootagent owns (the grub.d script loads only these, with load_env's whitelist).
DEFAULT_VAR = "bootagent_default"
ONCE_VAR = "bootagent_once"


class GrubenvError(SystemFailure):
    pass


@dataclass(frozen=True)
class Grubenv:
    values: Mapping[str, str]
    damaged: bool = False  # the block could not be parsed; values is what could be salvaged

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def parse(block: bytes) -> Grubenv:
    """Parse a block; never raises. Anything unexpected marks it damaged."""
    damaged = len(block) != SIZE or not block.startswith(HEADER)
    body = block[len(HEADER) :] if block.startswith(HEADER) else block
    values: dict[str, str] = {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Grubenv({}, damaged=True)
    for line in _split_lines(text):
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not _VAR_RE.fullmatch(name):
            damaged = True
            continue
        values[name] = _unescape(value)
    return Grubenv(values, damaged=damaged)


def _split_lines(text: str) -> list[str]:
    """Split on unescaped newlines (an escaped newline is part of a value)."""
    lines: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(ch)
    # whatever follows the last newline is padding ('#...') or garbage
    tail = "".join(current)
    if tail.strip("#"):
        lines.append(tail)
    return lines


def _unescape(value: str) -> str:
    out: list[str] = []
    it = iter(value)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append(nxt)
        else:
            out.append(ch)
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\\n")


def render(values: Mapping[str, str]) -> bytes:
    """Build the exact 1024-byte block. Raises UsageError when the values do not fit."""
    body = bytearray(HEADER)
    for name, value in values.items():
        if not _VAR_RE.fullmatch(name):
            raise UsageError(f"invalid GRUB environment variable name {name!r}")
        body += f"{name}={_escape(value)}\n".encode()
    if len(body) > SIZE:
        raise UsageError(
            f"the GRUB environment block would need {len(body)} bytes; it holds {SIZE}",
            hint="remove unused variables with grub-editenv FILE unset NAME",
        )
    body += b"#" * (SIZE - len(body))
    return bytes(body)


class GrubenvFile:
    """The block on disk. Writes keep every variable bootagent does not own."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> Grubenv:
        try:
            block = self.path.read_bytes()
        except FileNotFoundError:
            return Grubenv({})
        except OSError as exc:
            LOG.warning("cannot read %s: %s", self.path, exc)
            return Grubenv({}, damaged=True)
        env = parse(block)
        if env.damaged:
            LOG.warning("%s is damaged; treating unreadable values as unset", self.path)
        return env

    def writable(self) -> bool:
        return self.path.parent.is_dir() and os.access(self.path.parent, os.W_OK)

    def update(self, changes: Mapping[str, str | None]) -> Grubenv:
        """Set (value) or unset (None) variables and write the block atomically."""
        if not self.path.parent.is_dir():
            raise GrubenvError(
                f"the GRUB environment directory {self.path.parent} does not exist",
                hint="mount the GRUB partition (e.g. /boot/grub), or set 'grubenv' in the config",
            )
        values = dict(self.read().values)
        for name, value in changes.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        try:
            atomic_write(self.path, render(values))
        except OSError as exc:
            raise GrubenvError(f"cannot write {self.path}: {exc.strerror}") from exc
        return Grubenv(values)
