"""What apt tells a `DPkg::Pre-Install-Pkgs` hook about the packages it is about to change.

With `DPkg::Tools::Options::<hook>::Version "3"` apt writes to the hook's standard input (apt.conf(5)):
a line `VERSION 3`, its configuration as `name=value` lines up to an empty line, then one line per
package:

    name old-version old-arch old-multiarch direction new-version new-arch new-multiarch action

`-` stands for "none" (no old version: an installation; no new version: a removal); `direction` is `<`
(an upgrade), `>` (a downgrade) or `=` (the same version again); `action` is the path of the .deb,
`**CONFIGURE**` or `**REMOVE**`. Version 2 has no architecture and multi-arch fields. Without a version
(1) the lines are only the paths of the .deb files.

Nothing here fails on a line it does not understand: such a line is noted and left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

NONE = "-"
CONFIGURE = "**CONFIGURE**"
REMOVE = "**REMOVE**"


class Change(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    REINSTALL = "reinstall"
    REMOVE = "remove"
    CONFIGURE = "configure"  # only configured (unpacked earlier)


@dataclass(frozen=True)
class PackageChange:
    package: str  # with ":arch" for a foreign architecture (not the native one, "all" or none)
    change: Change
    old: str | None = None
    new: str | None = None

    def text(self) -> str:
        if self.change is Change.UPGRADE or self.change is Change.DOWNGRADE:
            return f"{self.change.value} {self.package} {self.old} -> {self.new}"
        version = self.new if self.change is not Change.REMOVE else self.old
        return f"{self.change.value} {self.package}" + (f" {version}" if version else "")


@dataclass(frozen=True)
class HookInput:
    version: int
    changes: tuple[PackageChange, ...]
    problems: tuple[str, ...] = ()


def _none(value: str) -> str | None:
    return None if value in (NONE, "") else value


def _from_deb(path: str) -> PackageChange | None:
    """Version 1: NAME_VERSION_ARCH.deb (the version's epoch colon is %3a in the file name)."""
    base = os.path.basename(path)
    if not base.endswith(".deb") or base.count("_") != 2:
        return None
    name, version, _arch = base[: -len(".deb")].split("_")
    return PackageChange(name, Change.INSTALL, None, version.replace("%3a", ":"))


def _package_line(fields: list[str], version: int, native: str | None) -> PackageChange | None:
    if version >= 3 and len(fields) == 9:
        name, old, old_arch, _, direction, new, new_arch, _, action = fields
        arch = _none(new_arch) or _none(old_arch)
    elif len(fields) == 5:
        name, old, direction, new, action = fields
        arch = None
    else:
        return None
    if arch and arch not in ("all", "none", native):
        name = f"{name}:{arch}"  # a foreign architecture
    old_v, new_v = _none(old), _none(new)
    if action == REMOVE or (new_v is None and old_v is not None):
        change = Change.REMOVE
    elif action == CONFIGURE:
        change = Change.CONFIGURE
    elif old_v is None:
        change = Change.INSTALL
    else:
        change = {"<": Change.UPGRADE, ">": Change.DOWNGRADE, "=": Change.REINSTALL}.get(
            direction, Change.UPGRADE
        )
    return PackageChange(name, change, old_v, new_v)


def parse(lines: Iterable[str]) -> HookInput:
    """The hook's standard input, whichever version apt spoke."""
    items = [line.rstrip("\r\n") for line in lines]
    version = 1
    native: str | None = None
    rest = items
    if items and items[0].startswith("VERSION "):
        try:
            version = int(items[0].split()[1])
        except (IndexError, ValueError):
            version = 2
        try:
            end = items.index("", 1)
        except ValueError:
            end = len(items)
        config = dict(line.split("=", 1) for line in items[1:end] if "=" in line)
        native = config.get("APT::Architecture")
        rest = items[end + 1 :]  # after the configuration dump
    problems: list[str] = []
    by_package: dict[str, PackageChange] = {}
    for line in rest:
        if not line.strip():
            continue
        change = _from_deb(line.strip()) if version == 1 else _package_line(line.split(), version, native)
        if change is None:
            problems.append(f"not understood: {line[:200]!r}")
            continue
        seen = by_package.get(change.package)
        if seen is None or seen.change is Change.CONFIGURE:  # the unpack says more than the configure
            by_package[change.package] = change
    return HookInput(version, tuple(by_package.values()), tuple(problems))


def describe(changes: Iterable[PackageChange], limit: int) -> str:
    """`apt: install hello 2.10-3, upgrade libc6 2.36-9 -> 2.36-10 and 12 more` in at most `limit`
    characters."""
    parts = [c.text() for c in changes]
    if not parts:
        return "apt"

    def more(count: int) -> str:
        return f" and {count} more" if count else ""

    text = "apt: " + parts[0]
    room = limit - len(more(len(parts) - 1))
    if len(text) > room:
        text = text[: max(0, room - 3)] + "..."
    for i, part in enumerate(parts[1:], 1):
        if len(text) + 2 + len(part) + len(more(len(parts) - i - 1)) > limit:
            return text + more(len(parts) - i)
        text += ", " + part
    return text
