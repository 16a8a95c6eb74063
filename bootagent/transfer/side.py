"""One end of a transfer: this machine or the storage host, both spoken to with the `zfs` command (the
storage host through ssh). Byte streams go through `Streams`; everything else through the one runner."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import IO, Protocol

from bootagent.errors import CommandError
from bootagent.model import Prop
from bootagent.runner import CommandResult, Runner
from bootagent.transfer.base import Snap
from bootagent.transfer.target import StorageHost
from bootagent.zfs.cli import translate_command_error

EXPORTED = Prop.EXPORTED.value  # epoch seconds, on a stored snapshot: when it was exported
MANIFEST = Prop.MANIFEST.value  # the manifest (compact JSON), on a stored snapshot
MACHINE = Prop.MACHINE.value  # on a stored environment: the machine it came from
LIST_TIMEOUT = 300.0
MASTER_TIMEOUT = 90.0  # ssh's connect and authentication, on a slow link or CPU
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """A snapshot as `zfs list` shows it, with bootagent's export properties."""

    name: str  # dataset@snap
    guid: int
    createtxg: int
    creation: int
    used: int
    referenced: int
    exported: int | None
    manifest: str | None

    @property
    def dataset(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def short(self) -> str:
        return self.name.split("@", 1)[1]

    def snap(self) -> Snap:
        return Snap(self.short, self.guid, self.createtxg)


class Side:
    def __init__(self, runner: Runner, host: StorageHost | None = None) -> None:
        self.runner = runner
        self.host = host

    @property
    def where(self) -> str:
        return f"on {self.host.host}" if self.host else "here"

    def argv(self, argv: Sequence[str]) -> list[str]:
        return self.host.ssh_argv(list(argv)) if self.host else list(argv)

    def zfs(self, argv: Sequence[str], *, what: str, timeout: float = LIST_TIMEOUT) -> str:
        try:
            return self.runner(self.argv(argv), timeout=timeout).stdout
        except CommandError as exc:
            raise translate_command_error(exc, what=f"{what} {self.where}") from None

    def _unchecked(self, argv: Sequence[str]) -> CommandResult:
        """A command whose failure is an answer; only ssh's own failure (255) is raised."""
        result = self.runner(self.argv(argv), check=False)
        if result.returncode == 255 and self.host:
            raise translate_command_error(
                CommandError(list(result.argv), returncode=255, stderr=result.stderr),
                what=f"reaching {self.host.host}",
            )
        return result

    def exists(self, name: str) -> bool:
        result = self._unchecked(["zfs", "list", "-H", "-o", "name", name])
        return result.returncode == 0

    def existing(self, names: Sequence[str]) -> dict[str, str | None]:
        """Which of `names` exist, each with its receive resume token (None: none), in one `zfs list`
        (it lists the ones there and fails for the others)."""
        argv = ["zfs", "list", "-H", "-o", "name,receive_resume_token", *names]
        result = self._unchecked(argv)
        found: dict[str, str | None] = {}
        for line in result.stdout.splitlines():
            name, _, token = line.partition("\t")
            if name in names:
                found[name] = None if token in ("", "-") else token
        if result.returncode != 0 and "does not exist" not in result.stderr:
            raise translate_command_error(
                CommandError(list(result.argv), returncode=result.returncode, stderr=result.stderr),
                what=f"looking for {', '.join(names)} {self.where}",
            )
        return found

    def value(self, name: str, prop: str) -> str | None:
        out = self.zfs(
            ["zfs", "get", "-H", "-p", "-o", "value", prop, name], what=f"reading {prop} of {name}"
        )
        value = out.strip()
        return None if value in ("", "-") else value

    def snapshots(self, dataset: str, *, recursive: bool = False) -> list[Stored]:
        """Oldest first (createtxg) -- per dataset when recursive."""
        props = f"name,guid,createtxg,creation,used,referenced,{EXPORTED},{MANIFEST}"
        depth = ["-r"] if recursive else ["-d", "1"]
        out = self.zfs(
            ["zfs", "list", "-H", "-p", "-t", "snapshot", "-o", props, "-s", "createtxg", *depth, dataset],
            what=f"listing the snapshots of {dataset}",
        )
        rows: list[Stored] = []
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) != 8:
                continue
            name, guid, txg, creation, used, refer, exported, manifest = fields
            rows.append(
                Stored(
                    name=name,
                    guid=int(guid),
                    createtxg=int(txg),
                    creation=int(creation),
                    used=int(used),
                    referenced=int(refer),
                    exported=int(exported) if exported.isdigit() else None,
                    manifest=None if manifest in ("", "-") else manifest,
                )
            )
        return rows

    def estimate(self, send_args: Sequence[str]) -> int | None:
        """`zfs send -nP ...`'s size line (None when it gives none: the bar then shows no share)."""
        try:
            out = self.runner(self.argv(["zfs", "send", "-n", "-P", *send_args]), timeout=LIST_TIMEOUT)
        except CommandError:
            return None
        for line in (out.stdout + "\n" + out.stderr).splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "size" and fields[1].isdigit():
                return int(fields[1])
        return None


def send_flags(raw: bool) -> list[str]:
    """Raw for encrypted datasets (still encrypted, the key stays on the sender); else large blocks,
    embedded and compressed blocks as they are on disk."""
    return ["-w"] if raw else ["-L", "-e", "-c"]


# --- byte streams -----------------------------------------------------------------------------------
class Proc(Protocol):
    """A process one end of a pipe is connected to."""

    @property
    def stream(self) -> IO[bytes]: ...

    def finish(self) -> None:
        """Wait for it; raise CommandError (with its stderr) if it failed."""

    def kill(self) -> None: ...


class Streams(Protocol):
    def reader(self, argv: Sequence[str]) -> Proc:
        """A process whose standard output is read."""

    def writer(self, argv: Sequence[str]) -> Proc:
        """A process whose standard input is written."""

    def multiplexed(self, host: StorageHost) -> AbstractContextManager[StorageHost]:
        """`host` reached through one ssh connection while the block runs (or as it is, if that fails)."""


class _Popen:
    def __init__(self, argv: Sequence[str], *, read: bool) -> None:
        self.argv = list(argv)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in finish()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL if read else subprocess.PIPE,
                stdout=subprocess.PIPE if read else subprocess.DEVNULL,
                stderr=self._err,
                env={**os.environ, "LC_ALL": "C"},
            )
        except FileNotFoundError:
            self._err.close()
            raise CommandError(
                self.argv, returncode=None, message=f"{self.argv[0]}: command not found"
            ) from None
        stream = self._proc.stdout if read else self._proc.stdin
        assert stream is not None
        self._stream: IO[bytes] = stream

    @property
    def stream(self) -> IO[bytes]:
        return self._stream

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._stream.close()
        code = self._proc.wait()
        self._err.seek(0)
        stderr = self._err.read().decode("utf-8", "replace")
        self._err.close()
        if code != 0:
            raise CommandError(self.argv, returncode=code, stderr=stderr)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()


class ProcessStreams:
    def reader(self, argv: Sequence[str]) -> Proc:
        return _Popen(argv, read=True)

    def writer(self, argv: Sequence[str]) -> Proc:
        return _Popen(argv, read=False)

    @contextlib.contextmanager
    def multiplexed(self, host: StorageHost) -> Iterator[StorageHost]:
        # the master gets no pipes: a background process holding them would keep a reader waiting
        with tempfile.TemporaryDirectory(prefix="bootagent-ssh-") as tmp:
            control = os.path.join(tmp, "control")
            try:
                started = _quiet(host.master_argv(control), MASTER_TIMEOUT) == 0
            except (OSError, subprocess.TimeoutExpired):
                started = False
            if not started:
                LOG.info("no ssh master connection to %s; each command connects on its own", host.host)
                yield host
                return
            try:
                yield replace(host, control=control)
            finally:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    _quiet(host.exit_argv(control), 30)


def _quiet(argv: list[str], timeout: float) -> int:
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    ).returncode
