"""Writing to a terminal that may go away: a serial console whose far end hangs up, a closed pipe.

Both front ends (app.py, lines.py) write through `Output`, which never raises: a write that fails (EIO after
a hang-up, EPIPE) is dropped and reported, and the menu goes on without a screen; its countdown still ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from typing import Any

LOG = logging.getLogger(__name__)

WRITE_WAIT = 2.0  # seconds a non-blocking terminal may refuse output before the rest of a write is dropped


class Output:
    """Text to a terminal, written at once, never raising.

    With a file descriptor the bytes go straight to it (os.write): a TextIOWrapper whose flush failed keeps
    the bytes and fails again at every later flush, up to the interpreter's exit (whose status then becomes
    120), so one write after a hang-up would poison the stream for good. Without one (a StringIO in the
    tests) it is write and flush. `write` returns whether the text went out; the first failure is logged,
    and so is the first success after one."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.encoding = str(getattr(stream, "encoding", None) or "utf-8")
        self.fd: int | None = None
        try:
            self.fd = int(stream.fileno())
        except (OSError, ValueError, AttributeError, TypeError):  # io.UnsupportedOperation is both
            self.fd = None
        if self.fd is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()  # what was written through the stream before comes first
        self.failed = False

    def write(self, text: str) -> bool:
        try:
            if self.fd is None:
                self.stream.write(text)
                self.stream.flush()
            else:
                self._write_all(text.encode(self.encoding, "replace"))
        except (OSError, ValueError) as exc:  # ValueError: a closed stream
            if not self.failed:
                LOG.warning("the terminal cannot be written to (%s): the menu goes on without a screen", exc)
            self.failed = True
            return False
        if self.failed:
            LOG.warning("the terminal can be written to again")
            self.failed = False
        return True

    def _write_all(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                if not select.select([], [self.fd], [], WRITE_WAIT)[1]:
                    raise TimeoutError("the terminal takes no more output") from None
