"""A minimal QMP (QEMU Machine Protocol) client over a unix socket."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class QMPError(RuntimeError):
    pass


class QMP:
    def __init__(self, path: Path, timeout: float = 30) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self.events: list[dict[str, Any]] = []  # asynchronous events seen (SHUTDOWN, RESET, ...)

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"cannot connect to QMP socket {self.path}") from None
                time.sleep(0.1)
        self._sock = sock
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        if self._sock is None:
            raise QMPError("QMP not connected")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def shutdown_reason(self) -> str | None:
        """After QEMU exited: read what it still sent (it sends SHUTDOWN before it goes) and return the
        reason of its last SHUTDOWN event ("guest-reset", "guest-shutdown", "host-qmp-quit", ...)."""
        if self._sock is not None:
            self._sock.settimeout(5)
            try:
                while True:
                    self.events.append(self._read())
            except (QMPError, OSError, ValueError):
                pass
        reasons = [e.get("data", {}).get("reason") for e in self.events if e.get("event") == "SHUTDOWN"]
        return reasons[-1] if reasons else None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
