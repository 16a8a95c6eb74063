"""The error hierarchy.

User-caused errors carry a message and a hint and are printed without a traceback; anything else is a bug
and keeps its traceback. Each class maps to one documented exit code (see README, "Exit codes").
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BUG = 1  # an unexpected error: a traceback is shown with --debug
    USAGE = 2  # bad arguments or a bad name
    CONFIG = 3  # the configuration file is invalid
    NOT_FOUND = 4  # the pool, environment or snapshot does not exist
    REFUSED = 5  # a safety rule refused the operation; nothing was changed
    SYSTEM = 6  # a zfs/zpool command or libzfs_core call failed
    INCOMPLETE = 7  # a multi-step operation stopped part-way; see the journal
    UNHEALTHY = 8  # a required health check failed: the boot is not good


class BootagentError(Exception):
    """An error the user can act on: printed as one message plus a hint."""

    exit_code = ExitCode.SYSTEM

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(BootagentError):
    exit_code = ExitCode.USAGE


class InvalidNameError(UsageError):
    pass


class NotFoundError(BootagentError):
    exit_code = ExitCode.NOT_FOUND


class RefusedError(BootagentError):
    """A safety rule said no. Nothing was changed."""

    exit_code = ExitCode.REFUSED


class IncompleteError(BootagentError):
    exit_code = ExitCode.INCOMPLETE


class SystemFailure(BootagentError):
    """The system (a command, libzfs_core, a file) failed under us."""

    exit_code = ExitCode.SYSTEM


class CommandError(SystemFailure):
    """A command exited non-zero, timed out or does not exist."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        returncode: int | None,
        stderr: str = "",
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        if message is None:
            detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
            message = f"{argv[0]} failed: {detail}"
        super().__init__(message, hint=hint)


class ZfsError(SystemFailure):
    """A libzfs_core call or channel program failed; `errno` as reported by ZFS."""

    def __init__(self, message: str, *, errno: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno


class ReadOnlyPoolError(ZfsError):
    pass


class ConfigProblem:
    """One problem in a config file, with its place."""

    __slots__ = ("column", "line", "message", "path")

    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class ConfigError(BootagentError):
    exit_code = ExitCode.CONFIG

    def __init__(self, problems: Sequence[ConfigProblem], *, hint: str | None = None) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"the configuration has {count} problem{'s' if count != 1 else ''}:"
        super().__init__(
            "\n  ".join([head, *map(str, self.problems)]),
            hint=hint or "fix the file, or run with --config pointing at another one",
        )
