"""Channel programs (Lua run inside the kernel in one transaction group) and the parsing of their results.

The programs live in `bootagent/zfs/lua/` as package data. Each changing program checks every step with
`zfs.check.*` first and changes nothing if any check fails; the results say which stage failed.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from bootagent.errors import BootagentError, IncompleteError, NotFoundError, RefusedError, ZfsError
from bootagent.zfs.cli import destroy_order
from bootagent.zfs.lzc import Lzc

LOG = logging.getLogger(__name__)


@cache
def load_program(name: str) -> str:
    """The text of a shipped Lua program, e.g. 'destroy.lua' (a plain file beside this module: the
    initramfs has no importlib.resources readers)."""
    return (Path(__file__).resolve().parent / "lua" / name).read_text(encoding="utf-8")


def pool_of(name: str) -> str:
    return name.split("/", 1)[0].split("@", 1)[0]


def as_list(value: Any) -> list[Any]:
    """A Lua array from convert_result: a list, or {} when it was empty."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and not value:
        return []
    raise ZfsError(f"a channel program returned {value!r} where a list was expected")


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and not value:
        return {}
    raise ZfsError(f"a channel program returned {value!r} where a table was expected")


def _reason(code: int, name: str, other: str | None = None) -> str:
    if code == errno.ENOENT:
        return f"{name} does not exist"
    if code == errno.EBUSY:
        if other:
            return f"{name} has a snapshot that is not being destroyed ({other})"
        return f"{name} is held, mounted or in use"
    if code == errno.EEXIST:
        if other:
            return f"{name} has a child that is not being destroyed ({other})"
        return f"{name} has clones or dependents"
    if code == errno.EROFS:
        return f"{name}: the pool is read-only"
    return f"{name}: {os.strerror(code)} (errno {code})"


def failure_error(
    what: str, result: Mapping[str, Any], *, hint_check: str | None = None
) -> BootagentError | None:
    """The error a changing program's result stands for, or None when it is `done`."""
    stage = result.get("stage")
    if stage == "done":
        return None
    failed = as_dict(result.get("failed", {}))
    blocked_by = as_dict(result.get("blocked_by", {}))
    codes = {name: int(code) for name, code in failed.items()}
    reasons = "; ".join(_reason(code, name, blocked_by.get(name)) for name, code in sorted(codes.items()))
    if stage == "check":
        if codes and all(code == errno.ENOENT for code in codes.values()):
            return NotFoundError(f"{what}: {reasons}")
        return RefusedError(f"{what}: {reasons}", hint=hint_check or "nothing was changed")
    if stage == "sync":
        done = as_list(result.get("destroyed", []))
        extra = f" (already destroyed: {', '.join(done)})" if done else ""
        return IncompleteError(
            f"{what}: stopped part-way: {reasons}{extra}",
            hint="list the datasets to see the current state",
        )
    return ZfsError(f"{what}: unexpected channel program result {result!r}")


class ChannelPrograms:
    """The shipped channel programs, run through libzfs_core."""

    def __init__(self, lzc: Lzc) -> None:
        self._lzc = lzc

    def destroy(self, names: Sequence[str]) -> list[str]:
        """Destroy all or nothing (file systems must be unmounted). Returns the destroyed names."""
        ordered = destroy_order(names)
        if not ordered:
            return []
        what = f"destroying {', '.join(ordered)}"
        result = as_dict(
            self._lzc.channel_program(
                pool_of(ordered[0]),
                load_program("destroy.lua"),
                {
                    "snapshots": [n for n in ordered if "@" in n],
                    "filesystems": [n for n in ordered if "@" not in n],
                },
                sync=True,
                what=what,
            )
        )
        error = failure_error(what, result, hint_check="nothing was destroyed")
        if error is not None:
            raise error
        return [str(n) for n in as_list(result.get("destroyed", []))]

    def rollback_newer(self, snapshot: str) -> list[str]:
        """Destroy the newer snapshots and roll back, in one txg; the file system must be unmounted."""
        filesystem = snapshot.split("@", 1)[0]
        what = f"rolling {filesystem} back to {snapshot}"
        result = as_dict(
            self._lzc.channel_program(
                pool_of(snapshot),
                load_program("rollback_newer.lua"),
                {"filesystem": filesystem, "snapshot": snapshot},
                sync=True,
                what=what,
            )
        )
        error = failure_error(
            what,
            result,
            hint_check="release the holds and destroy or promote the clones of the newer snapshots; "
            "nothing was changed",
        )
        if error is not None:
            raise error
        return [str(n) for n in as_list(result.get("destroyed", []))]

    def set_user(self, name: str, props: Mapping[str, str], clear: Sequence[str] = ()) -> None:
        """Set `props` and clear (inherit) `clear` on `name`, all in one txg."""
        what = f"setting user properties on {name}"
        result = as_dict(
            self._lzc.channel_program(
                pool_of(name),
                load_program("set_user.lua"),
                {"name": name, "set": dict(props), "clear": list(clear)},
                sync=True,
                what=what,
            )
        )
        error = failure_error(what, result)
        if error is not None:
            raise error
