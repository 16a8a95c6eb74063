"""The one runner for every external command the test bed starts."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOG = logging.getLogger(__name__)

StrPath = str | Path


class CommandError(RuntimeError):
    """An external command failed, timed out or is missing."""

    def __init__(
        self, argv: Sequence[StrPath], message: str, returncode: int | None = None, output: str = ""
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.splitlines()[-40:])
        text = f"{message}: {shlex.join(self.argv)}"
        super().__init__(text + (f"\n--- last output ---\n{tail}" if tail else ""))


def run(
    argv: Sequence[StrPath],
    *,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    cwd: StrPath | None = None,
    capture: bool = True,
    check: bool = True,
    stdin_data: bytes | None = None,
    log: Path | None = None,
) -> str:
    """Run argv (never through a shell); return its combined stdout+stderr as text.

    LC_ALL=C, stdin from /dev/null unless data is given, a timeout, one typed error.
    With ``log`` the output is appended to that file instead of being kept in memory.
    """
    args = [str(a) for a in argv]
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    LOG.debug("run: %s", shlex.join(args))
    started = time.monotonic()
    out_file = log.open("ab") if log is not None else None
    try:
        proc = subprocess.run(
            args,
            input=stdin_data,
            stdin=None if stdin_data is not None else subprocess.DEVNULL,
            stdout=out_file if out_file is not None else (subprocess.PIPE if capture else None),
            stderr=subprocess.STDOUT if (capture or out_file is not None) else None,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(args, f"command not found ({exc.filename})") from exc
    except subprocess.TimeoutExpired as exc:
        out = (exc.output or b"").decode(errors="replace") if isinstance(exc.output, bytes) else ""
        raise CommandError(args, f"timed out after {timeout:.0f} s", None, out) from exc
    finally:
        if out_file is not None:
            out_file.close()
    output = (proc.stdout or b"").decode(errors="replace") if out_file is None and capture else ""
    if out_file is not None and log is not None:
        output = _tail(log)
    LOG.debug("run: exit %d after %.1f s", proc.returncode, time.monotonic() - started)
    if check and proc.returncode != 0:
        raise CommandError(args, f"exit code {proc.returncode}", proc.returncode, output)
    return output


def _tail(path: Path, size: int = 8192) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size))
        return fh.read().decode(errors="replace")


def say(message: str) -> None:
    """Progress for the person running a build (stderr, flushed)."""
    print(f"[testbed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def retrying(what: str, attempt: Callable[[int], None], tries: int = 2) -> None:
    """Run attempt(1), attempt(2), ... until one succeeds: a guest that timed out on a busy machine gets
    another try (with more time: the attempt scales its timeouts by its number), saying so."""
    for number in range(1, tries + 1):
        try:
            attempt(number)
            return
        except (CommandError, RuntimeError) as exc:
            if number == tries:
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            say(f"{what} failed on try {number} of {tries} ({first}); trying again with more time")
