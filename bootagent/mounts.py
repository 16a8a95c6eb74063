"""The kernel's mount table (/proc/self/mounts), read once by one parser for every user."""

from __future__ import annotations

import re
from dataclasses import dataclass

MOUNTS = "/proc/self/mounts"


@dataclass(frozen=True)
class Mount:
    source: str
    point: str
    fstype: str


def unescape_mounts(field: str) -> str:
    """Undo the octal escapes of /proc/self/mounts (`\\040` for a space, `\\011`, `\\012`, `\\134`)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_table(path: str = MOUNTS) -> list[Mount]:
    """Every mount, in the kernel's order (of mounts on the same point, the last is on top). OSError when
    the table cannot be read."""
    found = []
    with open(path, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 3:
                found.append(Mount(unescape_mounts(fields[0]), unescape_mounts(fields[1]), fields[2]))
    return found


def mount_of(directory: str, table: list[Mount]) -> Mount | None:
    """The mount `directory` lies on: the longest mount point above it, the top one of equals."""
    best: Mount | None = None
    for mount in table:
        inside = directory == mount.point or directory.startswith(mount.point.rstrip("/") + "/")
        if inside and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    return best
