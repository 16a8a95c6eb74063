"""The one runner for every external command.

argv lists only, `LC_ALL=C`, stdin from /dev/null unless input is given, a timeout, a clear message when the
binary is missing, and one typed error (`CommandError`) carrying argv, exit code and stderr.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bootagent.errors import CommandError

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult: ...


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run a command and return its output; raise CommandError on failure when `check`."""
    args = [os.fspath(a) for a in argv]
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["LC_ALL"] = "C"
    LOG.debug("run: %s", args)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            args,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            env=full_env,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(
            args,
            returncode=None,
            message=f"{args[0]}: command not found",
            hint=f"install the package that provides {args[0]} (for zfs/zpool: zfsutils-linux)",
        ) from None
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise CommandError(
            args,
            returncode=None,
            stderr=stderr,
            message=f"{args[0]} did not finish within {timeout:g} s",
        ) from None
    LOG.debug("ran: %s: exit %d after %.3f s", args[0], proc.returncode, time.monotonic() - started)
    result = CommandResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(args, returncode=proc.returncode, stderr=proc.stderr)
    return result
