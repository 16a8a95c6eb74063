"""One stream from a process (or file) into a process (or file), failing as the failing end says."""

from __future__ import annotations

import contextlib
import os
import stat
from typing import IO

from bootagent.errors import CommandError
from bootagent.transfer.side import Proc
from bootagent.transfer.stream import Copied, NoSplice, Progress, pump, splice


class FileEnd:
    """A file as one end of a copy: written to a `.partial` name and renamed once complete and synced
    (so a cut leaves no stream that looks whole), or standard input/output (never closed)."""

    def __init__(self, stream: IO[bytes], *, final: str | None = None, partial: str | None = None) -> None:
        self._stream = stream
        self.final = final
        self.partial = partial

    @classmethod
    def create(cls, path: str) -> FileEnd:
        partial = path + ".partial"
        return cls(open(partial, "wb"), final=path, partial=partial)

    @property
    def stream(self) -> IO[bytes]:
        return self._stream

    def finish(self) -> None:
        self._stream.flush()
        if self.final is None:
            return
        os.fsync(self._stream.fileno())
        self._stream.close()
        assert self.partial is not None
        os.replace(self.partial, self.final)

    def kill(self) -> None:
        if self.final is None:
            return
        self._stream.close()
        if self.partial:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial)


def copy(
    source: Proc | FileEnd,
    sink: Proc | FileEnd,
    *,
    first: bytes = b"",
    progress: Progress | None,
    checksum: bool = True,
) -> Copied:
    """Pump source into sink (hashing it when `checksum`; without, two pipes are joined in the kernel).
    When the sink gives up (zfs receive refusing the stream), its error is the one raised; when the source
    fails (zfs send), the sink is closed and the source's error raised."""
    try:
        copied = _move(source.stream, sink.stream, first, progress, checksum)
    except BrokenPipeError:
        source.kill()
        _quietly(source)
        sink.finish()  # raises the receiver's own error
        raise CommandError(
            ["zfs", "receive"], returncode=None, message="the receiver stopped reading"
        ) from None
    except BaseException:
        source.kill()
        sink.kill()
        _quietly(source)
        _quietly(sink)
        raise
    try:
        source.finish()
    except BaseException:
        sink.kill()
        _quietly(sink)
        raise
    sink.finish()
    return copied


def _move(
    source: IO[bytes], sink: IO[bytes], first: bytes, progress: Progress | None, checksum: bool
) -> Copied:
    if not checksum and not first and _pipe(source) and _pipe(sink):
        try:
            return splice(source.fileno(), sink.fileno(), progress=progress)
        except NoSplice:
            pass
    return pump(source, sink, first=first, progress=progress, checksum=checksum)


def _pipe(stream: IO[bytes]) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # io.BytesIO has no descriptor
        return False


def _quietly(end: Proc | FileEnd) -> None:
    with contextlib.suppress(CommandError, OSError, ValueError):
        end.finish()
