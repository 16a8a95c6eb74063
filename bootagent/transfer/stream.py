"""Byte streams: the first record of a `zfs send` stream, and the pump that copies a stream with a checksum,
a byte count and progress.

The header is read only to check a stream against its manifest before `zfs receive` sees it (which stream
it is, and what it is incremental to); ZFS checks every record's own checksum while receiving.
"""

from __future__ import annotations

import hashlib
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
    sha256: str
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
) -> Copied:
    """Copy `first` and then everything `source` has to `sink`, hashing it as it goes."""
    digest = hashlib.sha256()
    total = 0
    started = clock()
    chunk = first or source.read(CHUNK)
    while chunk:
        digest.update(chunk)
        sink.write(chunk)
        total += len(chunk)
        if progress is not None:
            progress(total)
        chunk = source.read(CHUNK)
    return Copied(bytes=total, sha256=digest.hexdigest(), seconds=clock() - started)


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
