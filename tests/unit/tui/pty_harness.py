"""Drive the menu in a pty the way a person does: keys into the master, the screen read back with pyte."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pyte

REPO = Path(__file__).resolve().parents[3]
PYPI_BLESSED = REPO / ".venv" / "blessed-pypi"  # scripts/setup-host.sh installs PyPI's blessed here
BLESSED = ("debian", "pypi")

UP, DOWN, RIGHT, LEFT = "\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D"
SS3_UP, SS3_DOWN = "\x1bOA", "\x1bOB"
ENTER, ESC, CTRL_L = "\r", "\x1b", "\x0c"


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class MenuProcess:
    def __init__(
        self,
        tmp: Path,
        *args: str,
        term: str = "vt220",
        blessed: str = "debian",
        rows: int = 24,
        cols: int = 80,
        screen: tuple[int, int] | None = None,
        baud: int | None = None,
    ) -> None:
        self.out = tmp / "result.json"
        self.err = tmp / "stderr.txt"
        master, slave = os.openpty()
        set_size(slave, rows, cols)
        if (
            baud is not None
        ):  # the speed a serial line would have (a pty carries it, and goes as fast as ever)
            attrs = termios.tcgetattr(slave)
            attrs[4] = attrs[5] = getattr(termios, f"B{baud}")
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BLESSED_", "TERM_PROGRAM", "PYTEST"))
        }
        env["TERM"] = term
        path = [str(REPO)]
        if blessed == "pypi":
            assert (
                PYPI_BLESSED / "blessed"
            ).is_dir(), f"PyPI blessed missing in {PYPI_BLESSED}: run setup-host"
            path.insert(0, str(PYPI_BLESSED))
        env["PYTHONPATH"] = os.pathsep.join(path)
        self.started = time.monotonic()
        with open(self.err, "w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.unit.tui.child", "--out", str(self.out), *args],
                stdin=slave,
                stdout=slave,
                stderr=err,
                cwd=REPO,
                env=env,
                start_new_session=True,
            )
        os.close(slave)
        self.fd = master
        os.set_blocking(master, False)
        srows, scols = screen or (rows or 24, cols or 80)
        self.screen = pyte.Screen(scols, srows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        self.hung_up = False

    def hang_up(self) -> None:
        """Close the master: the terminal hangs up (reads on the child's side return 0 bytes, writes fail)."""
        os.close(self.fd)
        self.hung_up = True

    def cpu_seconds(self) -> float:
        """The child's CPU time so far (user and system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # --- the screen ----------------------------------------------------------------------------------
    def pump(self, timeout: float = 0.05) -> None:
        if self.hung_up:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        while ready:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self.raw += data
            self.stream.feed(data)
            ready, _, _ = select.select([self.fd], [], [], 0)

    @property
    def lines(self) -> list[str]:
        return [str(line) for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 8.0) -> float:
        """Until `text` is on the screen; returns the seconds since the start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if text in self.text:
                seen = time.monotonic() - self.started
                self.pump(0.05)  # the rest of the frame
                return seen
            if self.proc.poll() is not None:
                self.pump()
                if text in self.text:
                    return time.monotonic() - self.started
                break
        raise AssertionError(f"{text!r} not on the screen:\n{self.text}\nstderr:\n{self.stderr()}")

    def wait_gone(self, text: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if text not in self.text:
                return
        raise AssertionError(f"{text!r} still on the screen:\n{self.text}")

    def row_of(self, text: str) -> int:
        for i, line in enumerate(self.lines):
            if text in line:
                return i
        raise AssertionError(f"{text!r} not on the screen:\n{self.text}")

    def selected(self) -> str:
        """The list row with the cursor marker."""
        for line in self.lines:
            if line.startswith((">", "▶")):
                return line
        raise AssertionError(f"no selected row:\n{self.text}")

    # --- keys ----------------------------------------------------------------------------------------
    def send(self, keys: str | bytes, settle: float = 0.15) -> None:
        data = keys.encode() if isinstance(keys, str) else keys
        while data:
            _, writable, _ = select.select([], [self.fd], [], 1.0)
            if writable:
                try:
                    n = os.write(self.fd, data[:256])
                except BlockingIOError:
                    n = 0
                data = data[n:]
            self.pump(0)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self.pump(0.02)

    def stop_loop(self) -> None:
        """A child started with --loop ends after the menu's next exit."""
        Path(str(self.out) + ".stop").touch()

    def log(self) -> str:
        """What a child started with --debug logged."""
        path = Path(str(self.out) + ".log")
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace") if self.err.exists() else ""

    def result(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the menu did not end:\n{self.text}\nstderr:\n{self.stderr()}")
        self.pump()
        if not self.hung_up:
            os.close(self.fd)
            self.hung_up = True
        assert self.proc.returncode == 0, self.stderr()
        data: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.hung_up:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.hung_up = True
