"""One console owns the interactive menu at a time.

With a local console and a serial console both running the agent, the first to take the lock runs the
menu; the other says where the menu is and waits until the lock is free (the owner finished, or died:
an flock goes away with its process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from typing import TextIO

LOCK_PATH = "/run/bootagent/menu.lock"


class MenuLock:
    def __init__(self, tty: str, path: str = LOCK_PATH) -> None:
        self.tty = tty
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; True when this console now owns the menu."""
        if self.fd is not None:
            return True
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.tty} {os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str | None:
        """The console that owns the menu, as it wrote itself into the lock file."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read().split()
        except OSError:
            return None
        return text[0] if text else None

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None


@contextlib.contextmanager
def menu_owner(
    tty: str,
    out: TextIO,
    *,
    path: str = LOCK_PATH,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[MenuLock]:
    """Own the menu for the `with` block; meanwhile any other console waits, saying where the menu is."""
    lock = MenuLock(tty, path)
    shown: str | None = None
    while not lock.acquire():
        holder = lock.holder() or "another console"
        if holder != shown:
            out.write(f"bootagent: the menu is active on {holder}; waiting for it here\r\n")
            out.flush()
            shown = holder
        sleep(poll)
    try:
        yield lock
    finally:
        lock.release()
