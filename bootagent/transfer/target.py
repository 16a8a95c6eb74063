"""Where an export goes or an import comes from: standard input/output, a file, or a storage host.

-                                   one stream on standard output (export) or input (import)
PATH                                a stream file, its manifest beside it (PATH.manifest.json)
ssh://[USER@]HOST[:PORT]/DATASET    a ZFS dataset on a storage host, reached with ssh; exports are
                                    received into DATASET/MACHINE/ENVIRONMENT/{root,boot}
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from bootagent.errors import UsageError

MANIFEST_SUFFIX = ".manifest.json"
BOOT_SUFFIX = ".boot"
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*(@[A-Za-z0-9_.:-]+)?")
_HOST = re.compile(r"(?:([A-Za-z0-9_.-]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::([0-9]{1,5}))?")


@dataclass(frozen=True)
class Stdio:
    def __str__(self) -> str:
        return "-"


@dataclass(frozen=True)
class StreamFile:
    path: str

    @property
    def manifest(self) -> str:
        return self.path + MANIFEST_SUFFIX

    def part_path(self, part: str) -> str:
        return self.path if part == "root" else self.path + BOOT_SUFFIX

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class StorageHost:
    host: str
    dataset: str  # where the exports live on the host (an import names STORE/MACHINE/ENV[@SNAPSHOT])
    user: str | None = None
    port: int | None = None
    control: str | None = field(default=None, compare=False)  # ssh's ControlPath while a master runs

    def _opts(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30"]
        if self.port is not None:
            opts += ["-p", str(self.port)]
        return opts

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_argv(self, argv: list[str]) -> list[str]:
        """ssh with a batch mode (never a password prompt in a script) and the command quoted once; through
        the transfer's one connection when a master runs (ssh falls back to its own if it is gone)."""
        opts = self._opts()
        if self.control:
            opts += ["-o", "ControlMaster=no", "-o", f"ControlPath={self.control}"]
        return ["ssh", *opts, self.destination, "--", shlex.join(argv)]

    def master_argv(self, control: str) -> list[str]:
        """One connection for all the commands of a transfer (each handshake costs, most of all on slow
        CPUs): a master in the background once authenticated (-f), running nothing (-N)."""
        return [
            "ssh", *self._opts(), "-o", "ControlMaster=yes", "-o", f"ControlPath={control}",
            "-o", "ControlPersist=yes", "-f", "-N", self.destination,
        ]  # fmt: skip

    def exit_argv(self, control: str) -> list[str]:
        return ["ssh", "-o", f"ControlPath={control}", "-O", "exit", self.destination]

    def environment(self, machine: str, environment: str) -> str:
        return f"{self.dataset}/{machine}/{environment}"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh://{user}{self.host}{port}/{self.dataset}"


Location = Stdio | StreamFile | StorageHost


def parse_location(text: str) -> Location:
    if text == "-":
        return Stdio()
    if text.startswith("ssh://"):
        rest = text[len("ssh://") :]
        hostpart, slash, dataset = rest.partition("/")
        m = _HOST.fullmatch(hostpart)
        if not slash or not m or not _DATASET.fullmatch(dataset.rstrip("/")):
            raise UsageError(
                f"{text!r} is not a storage host address",
                hint="write ssh://[USER@]HOST[:PORT]/POOL/DATASET, e.g. ssh://backup@store1/tank/bootagent",
            )
        user, host, port = m.group(1), m.group(2), m.group(3)
        if port is not None and not 0 < int(port) < 65536:
            raise UsageError(f"{text!r}: port {port} is out of range")
        return StorageHost(
            host=host, dataset=dataset.rstrip("/"), user=user, port=None if port is None else int(port)
        )
    if not text or "\0" in text or "\n" in text:
        raise UsageError(f"{text!r} is not a file name")
    if text.endswith(MANIFEST_SUFFIX):
        raise UsageError(
            f"{text!r} is a manifest; name the stream file beside it",
            hint=f"drop the {MANIFEST_SUFFIX} suffix",
        )
    return StreamFile(text)
