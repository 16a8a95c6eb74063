"""What `bootagent setup` reads off a running system: the imported pools, their file systems and the mount
table -- the output of three commands, parsed here into plain values (so the inspection can be tested
against output recorded on real machines of each layout)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bootagent.model import Prop
from bootagent.runner import Runner

DATASET_COLUMNS = (
    "name",
    "mountpoint",
    "canmount",
    "encryption",
    "encryptionroot",
    "keyformat",
    Prop.CUSTOMER.value,
)
COMMANDS: Mapping[str, tuple[str, ...]] = {
    "pools": ("zpool", "list", "-H", "-o", "name"),
    "datasets": ("zfs", "list", "-H", "-t", "filesystem", "-o", ",".join(DATASET_COLUMNS)),
    "mounts": ("findmnt", "-r", "-n", "-o", "TARGET,SOURCE,FSTYPE,UUID"),
}


@dataclass(frozen=True)
class Mount:
    target: str
    source: str
    fstype: str
    uuid: str | None


@dataclass(frozen=True)
class Dataset:
    name: str
    mountpoint: str
    canmount: str
    encryption: str  # "off" or the cipher
    encryptionroot: str | None
    keyformat: str | None
    customer: bool  # org.bootagent:customer=on

    @property
    def pool(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True)
class SystemFacts:
    pools: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    mounts: tuple[Mount, ...]

    def mounted_at(self, target: str) -> Mount | None:
        """The file system mounted exactly at `target` (the last one, as the kernel shows it)."""
        found = [m for m in self.mounts if m.target == target]
        return found[-1] if found else None

    def holding(self, path: str) -> Mount | None:
        """The mount that holds `path` (the longest mount point above it)."""
        best: Mount | None = None
        for m in self.mounts:
            inside = path == m.target or path.startswith(m.target.rstrip("/") + "/")
            if inside and (best is None or len(m.target) >= len(best.target)):
                best = m
        return best

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)


def _unescape(field: str) -> str:
    """findmnt -r writes a space as \\x20 (and other unsafe bytes likewise)."""
    return field.encode("latin-1", "backslashreplace").decode("unicode_escape") if "\\x" in field else field


def _none(value: str) -> str | None:
    return None if value in ("-", "") else value


def parse(outputs: Mapping[str, str]) -> SystemFacts:
    pools = tuple(line.strip() for line in outputs["pools"].splitlines() if line.strip())
    datasets = []
    for line in outputs["datasets"].splitlines():
        fields = line.split("\t")
        if len(fields) != len(DATASET_COLUMNS):
            continue
        name, mountpoint, canmount, encryption, root, keyformat, customer = fields
        datasets.append(
            Dataset(
                name=name,
                mountpoint=mountpoint,
                canmount=canmount,
                encryption=encryption,
                encryptionroot=_none(root),
                keyformat=_none(keyformat) if keyformat != "none" else None,
                customer=customer.strip().lower() in ("on", "yes", "true", "1"),
            )
        )
    mounts = []
    for line in outputs["mounts"].splitlines():
        fields = line.split(" ")
        if len(fields) < 3:
            continue
        target, source, fstype = (_unescape(f) for f in fields[:3])
        uuid = _none(fields[3]) if len(fields) > 3 else None
        mounts.append(Mount(target, source, fstype, uuid))
    return SystemFacts(pools, tuple(datasets), tuple(mounts))


def file_exists(path: str) -> bool:
    return os.path.exists(path)


def gather(runner: Runner) -> SystemFacts:
    return parse({key: runner(list(argv), timeout=120).stdout for key, argv in COMMANDS.items()})
