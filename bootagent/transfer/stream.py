"""Byte streams: the first record of a `zfs send` stream, and the pumps that copy a stream with a byte
count and progress -- through this process with a checksum, or (no checksum wanted, pipe to pipe) moved by
the kernel with splice(2), so that a copy costs what `zfs send | zfs receive` costs.

The header is read only to check a stream against its manifest before `zfs receive` sees it (which stream
it is, and what it is incremental to); ZFS checks every record's own checksum while receiving.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bootagent.errors import RefusedError

# include/sys/zfs_ioctl.h: struct dmu_replay_record { uint32 drr_type; uint32 drr_payloadlen; union {
# struct drr_begin { uint64 magic, versioninfo, creation_time; uint32 type, flags; uint64 toguid, fromguid;
# char toname[MAXNAMELEN]; } } }, written in the sender's byte order (the magic tells which).
DRR_BEGIN = 0
DMU_BACKUP_MAGIC = 0x2F5BACBAC
_BEGIN = struct.Struct("<IIQQQIIQQ256s")
HEADER_SIZE = _BEGIN.size  # 312 bytes
CHUNK = 1 << 20


@dataclass(frozen=True)
class StreamHeader:
    toname: str  # pool/ROOT/beta@snap, as the sender named it
    toguid: int  # the guid of the snapshot the stream carries (kept by zfs receive)
    fromguid: int  # 0 for a full stream, else the guid of the snapshot it is incremental to
    creation: int

    @property
    def incremental(self) -> bool:
        return self.fromguid != 0

    @classmethod
    def parse(cls, data: bytes, *, what: str = "the stream") -> StreamHeader:
        if len(data) < HEADER_SIZE:
            raise RefusedError(
                f"{what} is not a ZFS send stream: it ends after {len(data)} bytes",
                hint="it is empty or cut off; export it again",
            )
        for order in "<>":
            fields = struct.unpack(order + _BEGIN.format[1:], data[:HEADER_SIZE])
            if fields[0] == DRR_BEGIN and fields[2] == DMU_BACKUP_MAGIC:
                break
        else:
            raise RefusedError(
                f"{what} is not a ZFS send stream (no BEGIN record with the send magic)",
                hint="give the file 'bootagent export' or 'zfs send' wrote",
            )
        _type, _len, _magic, _version, creation, _ostype, _flags, toguid, fromguid, name = fields
        toname = name.split(b"\0", 1)[0].decode("utf-8", "replace")
        return cls(toname=toname, toguid=toguid, fromguid=fromguid, creation=creation)


class Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class Copied:
    bytes: int
    sha256: str | None  # None: not computed (a copy between two processes, checked by ZFS itself)
    seconds: float

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int], None]


def pump(
    source: Reader,
    sink: Writer,
    *,
    first: bytes = b"",
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    checksum: bool = True,
) -> Copied:
    """Copy `first` and then everything `source` has to `sink`, hashing it as it goes (`checksum`)."""
    digest = hashlib.sha256() if checksum else None
    total = 0
    started = clock()
    chunk = first or source.read(CHUNK)
    while chunk:
        if digest is not None:
            digest.update(chunk)
        sink.write(chunk)
        total += len(chunk)
        if progress is not None:
            progress(total)
        chunk = source.read(CHUNK)
    return Copied(total, digest.hexdigest() if digest else None, clock() - started)


class NoSplice(Exception):
    """The kernel cannot splice between these two descriptors (nothing was moved)."""


def splice(
    source: int,
    sink: int,
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Copied:
    """Move everything from the pipe `source` into the pipe `sink` inside the kernel (splice(2)): the bytes
    never enter this process. Raises NoSplice when the very first call says the kernel cannot."""
    total = 0
    started = clock()
    while True:
        try:
            moved = os.splice(source, sink, CHUNK)
        except OSError as exc:
            if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EBADF):
                raise NoSplice(str(exc)) from None
            raise
        if moved == 0:
            return Copied(total, None, clock() - started)
        total += moved
        if progress is not None:
            progress(total)


def read_exactly(source: Reader, n: int) -> bytes:
    """Up to n bytes (fewer only at the end of the stream): a pipe's read may return less."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        part = source.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
