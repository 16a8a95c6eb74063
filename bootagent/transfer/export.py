"""`bootagent export ENV[@SNAP] LOCATION`: ZFS send streams of an environment's snapshot (both halves of a
pair) to standard output, a file, or a storage host.

To a storage host the streams are received there with `zfs receive -s`: only what changed since the newest
snapshot the host already has travels, an interrupted receive is resumed from its token by the next export,
and the host's copy is checked by guid afterwards. Encrypted datasets are sent raw (`zfs send -w`): the key
never leaves this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, TextIO

from bootagent import __version__
from bootagent.environments import BootEnvironments
from bootagent.errors import CommandError, IncompleteError, RefusedError, UsageError
from bootagent.fsutil import atomic_write
from bootagent.model import BootEnvironment, CreatedBy, Prop, Snapshot
from bootagent.names import split_target, validate_name
from bootagent.pairs import boot_refusal
from bootagent.transfer import base as choice
from bootagent.transfer.copy import FileEnd, copy
from bootagent.transfer.manifest import Manifest, Part
from bootagent.transfer.progress import ProgressLine, size
from bootagent.transfer.side import EXPORTED, MACHINE, MANIFEST, Side, Streams, send_flags
from bootagent.transfer.target import Location, Stdio, StorageHost, StreamFile
from bootagent.zfs.cli import translate_command_error

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartResult:
    part: str
    source: str  # dataset@snap sent
    destination: str
    bytes: int
    seconds: float
    base: str | None  # the snapshot it was incremental to
    skipped: bool = False  # already on the storage host
    resumed: bool = False  # an interrupted receive was finished first

    def describe(self) -> str:
        if self.skipped:
            return f"{self.part}: {self.source} is already on it ({self.destination})"
        how = f"incremental from @{self.base}" if self.base else "full"
        rate = self.bytes / self.seconds / 2**20 if self.seconds > 0 else 0.0
        extra = " (after finishing an interrupted one)" if self.resumed else ""
        return (
            f"{self.part}: {self.source} -> {self.destination}, {how}{extra}, {self.bytes} bytes in "
            f"{self.seconds:.1f} s ({rate:.1f} MiB/s)"
        )


@dataclass(frozen=True)
class ExportResult:
    manifest: Manifest
    location: str
    parts: tuple[PartResult, ...]

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.parts)


class Exporter:
    def __init__(
        self,
        envs: BootEnvironments,
        local: Side,
        streams: Streams,
        *,
        remote: Callable[[StorageHost], Side],
        machine: str,
        progress_out: TextIO,
        stdout: IO[bytes] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.envs = envs
        self.local = local
        self.streams = streams
        self.remote = remote
        self.machine = validate_name(machine, what="machine name")
        self.progress_out = progress_out
        self.stdout = stdout
        self.clock = clock

    # --- what to send --------------------------------------------------------------------------------
    def _snapshot(self, target: str) -> tuple[BootEnvironment, Snapshot]:
        env_name, snap_name = split_target(target)
        inv = self.envs.inventory()
        env = inv.find(env_name)
        if snap_name is None:
            snap = self.envs.checkpoint(
                env.name,
                name=self.envs.auto_name(CreatedBy.AUTOMATIC).replace("auto-", "export-", 1),
                description="the state exported",
                created_by=CreatedBy.AUTOMATIC,
            )
            env = self.envs.inventory().find(env.name)
        else:
            snap = inv.find_snapshot(env.name, snap_name)
        if (why := boot_refusal(snap)) is not None:
            raise RefusedError(why, hint="a pair with a missing half is not exported")
        return env, snap

    def _parts(self, env: BootEnvironment, snap: Snapshot) -> list[tuple[str, str]]:
        parts = [("root", env.dataset)]
        if env.boot_dataset and snap.boot_name:
            parts.append(("boot", env.boot_dataset))
        return parts

    def _raw(self, dataset: str) -> bool:
        return self.local.value(dataset, "encryption") not in (None, "off")

    def _manifest(self, env: BootEnvironment, snap: Snapshot, parts: Sequence[Part]) -> Manifest:
        props = {"description": env.description, "created_by": env.created_by.value}
        if env.kernel:
            props["kernel"] = env.kernel
        return Manifest(
            machine=self.machine,
            environment=env.name,
            snapshot=snap.name,
            exported=int(self.clock()),
            version=__version__,
            parts=tuple(parts),
            properties=props,
        )

    # --- the verb ------------------------------------------------------------------------------------
    def export(
        self,
        target: str,
        location: Location,
        *,
        base: str | None = None,
        full: bool = False,
        as_name: str | None = None,
        manifest_path: str | None = None,
    ) -> ExportResult:
        if isinstance(location, StorageHost):
            if base is not None:
                raise UsageError("--base is for files: a storage host is asked what it already has")
            env, snap = self._snapshot(target)
            with self._recorded(env, snap, location), self.streams.multiplexed(location) as host:
                return self._to_host(env, snap, host, full=full, as_name=as_name or env.name)
        if as_name is not None or full:
            raise UsageError("--as and --full are for a storage host")
        if isinstance(location, StreamFile):  # before a snapshot is taken for it
            for path in (location.path, location.part_path("boot"), location.manifest):
                if os.path.exists(path):
                    raise RefusedError(
                        f"{path} exists", hint="an export never overwrites a file; choose another"
                    )
        env, snap = self._snapshot(target)
        with self._recorded(env, snap, location):
            return self._to_stream(env, snap, location, base, manifest_path)

    @contextlib.contextmanager
    def _recorded(self, env: BootEnvironment, snap: Snapshot, location: Location) -> Iterator[None]:
        """In the journal (who sent what where), and once complete as the environment's last export
        (fleet status shows its age)."""
        data = {"snapshot": f"{env.dataset}@{snap.name}", "location": str(location)}
        with self.envs.journal.operation(
            "export", f"{env.name}@{snap.name}", detail=str(location), data=data
        ):
            yield
            self.envs.zfs.set_user(env.dataset, {Prop.LAST_EXPORT.value: str(int(self.clock()))})

    def _to_stream(
        self,
        env: BootEnvironment,
        snap: Snapshot,
        location: Location,
        base: str | None,
        manifest_path: str | None,
    ) -> ExportResult:
        parts = self._parts(env, snap)
        if isinstance(location, Stdio) and len(parts) > 1:
            raise UsageError(
                f"{env.name} is a pair (/ and /boot in two pools): one standard output cannot carry both",
                hint="export it to a file (PATH and PATH.boot) or to a storage host",
            )
        results: list[PartResult] = []
        manifest_parts: list[Part] = []
        for part, dataset in parts:
            raw = self._raw(dataset)
            wanted = f"{dataset}@{snap.name}"
            base_snap = self._file_base(dataset, base, wanted) if base else None
            args = [*send_flags(raw), *(["-i", f"@{base_snap.name}"] if base_snap else []), wanted]
            if isinstance(location, Stdio):
                if self.stdout is None:
                    raise UsageError("no standard output to write to")
                sink = FileEnd(self.stdout)
                where = "standard output"
            else:
                assert isinstance(location, StreamFile)
                where = location.part_path(part)
                if os.path.exists(where):
                    raise RefusedError(
                        f"{where} exists", hint="an export never overwrites a file; choose another"
                    )
                sink = FileEnd.create(where)
            result, copied_sha = self._send(part, args, sink, where, base_snap.name if base_snap else None)
            results.append(result)
            manifest_parts.append(
                Part(
                    part=part,
                    dataset=dataset,
                    snapshot_guid=self._guid(wanted),
                    from_snapshot=base_snap.name if base_snap else None,
                    from_guid=base_snap.guid if base_snap else None,
                    raw=raw,
                    bytes=result.bytes,
                    sha256=copied_sha,
                    file=os.path.basename(where) if isinstance(location, StreamFile) else None,
                )
            )
        manifest = self._manifest(env, snap, manifest_parts)
        path = location.manifest if isinstance(location, StreamFile) else manifest_path
        if path:
            atomic_write(path, manifest.to_json().encode())
        return ExportResult(manifest, str(location), tuple(results))

    def _guid(self, snapshot: str) -> int:
        value = self.local.value(snapshot, "guid")
        if value is None or not value.isdigit():
            raise RefusedError(f"{snapshot} has no guid", hint="is it a snapshot?")
        return int(value)

    def _file_base(self, dataset: str, base: str, wanted: str) -> choice.Snap:
        snaps = {s.short: s for s in self.local.snapshots(dataset)}
        name = base.split("@", 1)[-1]
        found = snaps.get(name)
        target = snaps.get(wanted.split("@", 1)[1])
        if found is None:
            raise UsageError(f"{dataset} has no snapshot {name} to send the difference from")
        if target is not None and found.createtxg >= target.createtxg:
            raise UsageError(f"--base {name} is not older than {wanted}")
        return found.snap()

    def _send(
        self, part: str, args: list[str], sink: FileEnd, where: str, base: str | None
    ) -> tuple[PartResult, str]:
        estimate = self.local.estimate(args)
        bar = ProgressLine(f"export {args[-1]}", estimate, self.progress_out)
        source = self.streams.reader(self.local.argv(["zfs", "send", *args]))
        copied = copy(source, sink, progress=bar)  # hashed: a file's manifest carries its SHA-256
        assert copied.sha256 is not None
        bar.done(copied.bytes, copied.seconds)
        return (
            PartResult(part, args[-1], where, copied.bytes, copied.seconds, base),
            copied.sha256,
        )

    # --- to a storage host ---------------------------------------------------------------------------
    def _to_host(
        self, env: BootEnvironment, snap: Snapshot, host: StorageHost, *, full: bool, as_name: str
    ) -> ExportResult:
        validate_name(as_name, what="environment name")
        if "@" in host.dataset:
            raise UsageError(f"{host}: an export goes to the store's dataset, without @SNAPSHOT")
        remote = self.remote(host)
        container = host.environment(self.machine, as_name)
        machine_dir = f"{host.dataset}/{self.machine}"
        parts_to_send = self._parts(env, snap)
        dests = [f"{container}/{part}" for part, _ in parts_to_send]
        present = remote.existing([host.dataset, machine_dir, container, *dests])  # one round trip
        if host.dataset not in present:
            raise RefusedError(
                f"{host.dataset} does not exist on {host.host}",
                hint=f"create it there first: zfs create -o canmount=off -o mountpoint=none {host.dataset}",
            )
        for dataset, label in ((machine_dir, []), (container, ["-o", f"{MACHINE}={self.machine}"])):
            if dataset not in present:
                remote.zfs(
                    ["zfs", "create", "-o", "canmount=off", "-o", "mountpoint=none", *label, dataset],
                    what=f"creating {dataset}",
                )
        results: list[PartResult] = []
        parts: list[Part] = []
        for (part, dataset), dest in zip(parts_to_send, dests, strict=True):
            result, made = self._part_to_host(
                remote, part, dataset, snap.name, dest, full, exists=dest in present, token=present.get(dest)
            )
            results.append(result)
            parts.append(made)
        manifest = self._manifest(env, snap, parts)
        if all(r.skipped and not r.resumed for r in results):
            return ExportResult(manifest, f"{host}/{self.machine}/{as_name}", tuple(results))
        for made in parts:
            stored = f"{container}/{made.part}@{snap.name}"
            remote.zfs(
                [
                    "zfs",
                    "set",
                    f"{EXPORTED}={manifest.exported}",
                    f"{MANIFEST}={manifest.to_json(compact=True)}",
                    stored,
                ],
                what=f"recording the export on {stored}",
            )
        return ExportResult(manifest, f"{host}/{self.machine}/{as_name}", tuple(results))

    def _part_to_host(
        self,
        remote: Side,
        part: str,
        dataset: str,
        snap_name: str,
        dest: str,
        full: bool,
        *,
        exists: bool,
        token: str | None,
    ) -> tuple[PartResult, Part]:
        raw = self._raw(dataset)
        wanted = f"{dataset}@{snap_name}"
        resumed = False
        total_bytes, total_seconds = 0, 0.0
        if token:
            LOG.info("%s: finishing an interrupted receive first", dest)
            result = self._receive_on(remote, ["-t", token], dest, f"{wanted} (resumed)", None)
            total_bytes, total_seconds, resumed = result.bytes, result.seconds, True
            exists = True
        local = [s.snap() for s in self.local.snapshots(dataset)]
        remote_guids = [s.guid for s in remote.snapshots(dest)] if exists else None
        picked = choice.choose_base(local, snap_name, remote_guids, full=full)
        target = (
            next(s for s in local if s.name == snap_name) if not isinstance(picked, choice.Refuse) else None
        )
        if isinstance(picked, choice.Refuse):
            raise RefusedError(
                f"{wanted} to {remote.host.host if remote.host else 'it'}: {picked.why}", hint=picked.hint
            )
        assert target is not None
        base_name = picked.base.name if isinstance(picked, choice.Incremental) else None
        made = Part(
            part=part,
            dataset=dataset,
            snapshot_guid=target.guid,
            from_snapshot=base_name,
            from_guid=picked.base.guid if isinstance(picked, choice.Incremental) else None,
            raw=raw,
            bytes=0,
            sha256=None,
        )
        if isinstance(picked, choice.AlreadyThere):
            return PartResult(
                part, wanted, dest, total_bytes, total_seconds, None, skipped=True, resumed=resumed
            ), made
        args = [*send_flags(raw), *(["-i", f"@{base_name}"] if base_name else []), wanted]
        result = self._receive_on(remote, args, dest, wanted, base_name)
        if target.guid not in [s.guid for s in remote.snapshots(dest)]:
            raise RefusedError(
                f"{dest}@{snap_name} on {remote.where}: the received snapshot is not {wanted} (guid differs)",
                hint="look at it on the storage host; nothing was changed here",
            )
        made = replace(made, bytes=result.bytes)
        return (
            PartResult(
                part,
                wanted,
                dest,
                total_bytes + result.bytes,
                total_seconds + result.seconds,
                base_name,
                resumed=resumed,
            ),
            made,
        )

    def _receive_on(
        self, remote: Side, args: list[str], dest: str, what: str, base: str | None
    ) -> PartResult:
        estimate = self.local.estimate(args)
        bar = ProgressLine(f"export {what}", estimate, self.progress_out)
        source = self.streams.reader(self.local.argv(["zfs", "send", *args]))
        try:
            sink = self.streams.writer(remote.argv(["zfs", "receive", "-s", "-u", dest]))
        except BaseException:
            source.kill()
            raise
        try:  # no checksum of ours: the host's zfs receive checks every record, and the guid is checked after
            copied = copy(source, sink, progress=bar, checksum=False)
        except CommandError as exc:
            self.progress_out.write("\n")
            if remote.exists(dest) and remote.value(dest, "receive_resume_token"):
                raise IncompleteError(
                    f"the export of {what} to {remote.where} was cut off after {size(bar.last)}: "
                    "the storage host kept what arrived (a receive resume token)",
                    hint="run the same export again: it sends the rest first",
                ) from None
            raise translate_command_error(exc, what=f"sending {what} {remote.where}") from None
        bar.done(copied.bytes, copied.seconds)
        return PartResult("", what, dest, copied.bytes, copied.seconds, base)
