"""`bootagent import LOCATION`: a new boot environment from an export -- never over an existing one.

Before anything is received, a file is checked against its manifest (size, SHA-256, and the stream's own
BEGIN record: which snapshot it carries and what it is incremental to). An incremental stream is received
as a clone of the snapshot it was made against (`zfs receive -o origin=`), found here by guid. Afterwards
the received snapshot's guid is compared with the manifest's; a mismatch undoes the import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, TextIO

from bootagent.environments import BootEnvironments
from bootagent.errors import BootagentError, NotFoundError, RefusedError, UsageError
from bootagent.model import CreatedBy, Prop
from bootagent.names import validate_name
from bootagent.transfer.copy import FileEnd, copy
from bootagent.transfer.manifest import Manifest, Part
from bootagent.transfer.progress import ProgressLine
from bootagent.transfer.side import Proc, Side, Stored, Streams, send_flags
from bootagent.transfer.stream import HEADER_SIZE, StreamHeader, read_exactly
from bootagent.transfer.target import Location, StorageHost, StreamFile

LOG = logging.getLogger(__name__)
BOOT_MOUNTPOINT = "/boot"


@dataclass(frozen=True)
class ImportResult:
    environment: str
    dataset: str
    snapshot: str
    bytes: int
    seconds: float
    incremental_from: str | None  # the local snapshot the new environment is a clone of

    def describe(self) -> str:
        how = (
            f"as a clone of {self.incremental_from} and the difference" if self.incremental_from else "whole"
        )
        rate = self.bytes / self.seconds / 2**20 if self.seconds > 0 else 0.0
        return (
            f"imported {self.environment} ({self.dataset}@{self.snapshot}) {how}: {self.bytes} bytes in "
            f"{self.seconds:.1f} s ({rate:.1f} MiB/s)"
        )


Opener = Callable[[], "tuple[Proc | FileEnd, int | None]"]


@dataclass(frozen=True)
class _Incoming:
    """One part's stream, checked, ready to receive."""

    part: str
    header: StreamHeader
    base: str | None  # local dataset@snap to clone from (incremental), or None
    open: Opener  # the stream's source and its size (or estimate)
    sha256: str | None = None  # what the bytes must hash to as they pass (standard input's manifest)
    guid: int | None = None  # the snapshot guid the received one must have
    first: bytes = b""  # already read from the source (standard input's header)


def split_store_source(host: StorageHost) -> tuple[StorageHost, str, str, str | None]:
    """ssh://HOST/STORE/MACHINE/ENV[@SNAP] -> (host at STORE, MACHINE, ENV, SNAP)."""
    dataset, _, snap = host.dataset.partition("@")
    parts = dataset.split("/")
    if len(parts) < 3:
        raise UsageError(
            f"{host}: name the export as STORE/MACHINE/ENVIRONMENT[@SNAPSHOT]",
            hint="'bootagent store list ssh://HOST/STORE' shows what is stored",
        )
    store = replace(host, dataset="/".join(parts[:-2]))
    return store, parts[-2], parts[-1], snap or None


class Importer:
    def __init__(
        self,
        envs: BootEnvironments,
        local: Side,
        streams: Streams,
        *,
        remote: Callable[[StorageHost], Side],
        progress_out: TextIO,
        stdin: IO[bytes] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.envs = envs
        self.local = local
        self.streams = streams
        self.remote = remote
        self.progress_out = progress_out
        self.stdin = stdin
        self.clock = clock

    # --- where the new environment goes --------------------------------------------------------------
    def _new_name(self, name: str) -> tuple[str, str | None]:
        validate_name(name, what="environment name")
        inv = self.envs.inventory()
        dataset = f"{self.envs.root}/{name}"
        if any(e.name == name for e in inv.environments) or self.local.exists(dataset):
            raise RefusedError(
                f"boot environment {name} exists: an import never replaces one",
                hint="give the new one another name with --name",
            )
        boot = self.envs.layout.boot_half(dataset)
        if boot and self.local.exists(boot):
            raise RefusedError(f"{boot} exists", hint="give the new one another name with --name")
        return dataset, boot

    def _here_by_guid(self, part: str) -> dict[int, str]:
        """This machine's snapshots of every environment (the root halves, or the /boot halves), by guid."""
        roots = [self.envs.root] if part == "root" else [r for r in [self.envs.layout.boot] if r]
        here: dict[int, str] = {}
        for root in roots:
            for snap in self.local.snapshots(root, recursive=True):
                here.setdefault(snap.guid, snap.name)
        return here

    def _local_base(self, guid: int, part: str) -> str:
        """The snapshot here an incremental stream was made against (any environment's, by guid)."""
        if (name := self._here_by_guid(part).get(guid)) is not None:
            return name
        raise RefusedError(
            "the stream is only a difference, and the snapshot it was made against is not on this machine",
            hint="import a full export first (a first export is whole), or the one it was made from",
        )

    def _check(self, header: StreamHeader, part: Part | None, what: str) -> None:
        if part is None:
            return
        if header.toguid != part.snapshot_guid:
            raise RefusedError(
                f"{what} carries another snapshot than its manifest names ({header.toname})",
                hint="the stream and the manifest do not belong together; nothing was changed",
            )
        if header.fromguid != (part.from_guid or 0):
            raise RefusedError(
                f"{what}: the stream's base is not the one its manifest names",
                hint="the stream and the manifest do not belong together; nothing was changed",
            )

    # --- the verb ------------------------------------------------------------------------------------
    def import_(
        self,
        location: Location,
        *,
        name: str | None = None,
        manifest_path: str | None = None,
        no_manifest: bool = False,
    ) -> ImportResult:
        self.envs.resume_pending()
        if isinstance(location, StorageHost):
            with self.streams.multiplexed(location) as host:
                return self._from_host(host, name)
        manifest: Manifest | None = None
        path = location.manifest if isinstance(location, StreamFile) else manifest_path
        if path and not no_manifest:
            try:
                with open(path, encoding="utf-8") as f:
                    manifest = Manifest.from_json(f.read(), where=path)
            except FileNotFoundError:
                raise NotFoundError(
                    f"{path}: no manifest beside the stream",
                    hint="copy it with the stream, or --no-manifest to trust ZFS's own stream checksums",
                ) from None
        if isinstance(location, StreamFile):
            return self._from_file(location, manifest, name)
        return self._from_stdin(manifest, name)

    def _from_file(self, location: StreamFile, manifest: Manifest | None, name: str | None) -> ImportResult:
        parts = [p.part for p in manifest.parts] if manifest else ["root"]
        incoming: list[_Incoming] = []
        for part in parts:
            path = location.part_path(part)
            info = manifest.part(part) if manifest else None
            if not os.path.exists(path):
                raise NotFoundError(f"{path}: the {part} stream of the export is missing")
            if info is not None:
                self._verify_file(path, info)
            with open(path, "rb") as f:
                header = StreamHeader.parse(read_exactly(f, HEADER_SIZE), what=path)
            self._check(header, info, path)
            base = self._local_base(header.fromguid, part) if header.incremental else None
            incoming.append(
                _Incoming(
                    part,
                    header,
                    base,
                    open=_file_opener(path),  # its SHA-256 was checked above, before anything changed
                    guid=header.toguid,
                )
            )
        env_name = name or (manifest.environment if manifest else _env_of(incoming[0].header))
        dataset, boot = self._new_name(env_name)
        if len(incoming) > 1 and boot is None:
            raise RefusedError(
                "the export is a pair (/ and /boot) and this machine has no boot pool",
                hint="import it on a machine with the two-pool layout",
            )
        return self._receive_all(env_name, dataset, boot, incoming, manifest, str(location))

    def _verify_file(self, path: str, part: Part) -> None:
        size = os.path.getsize(path)
        if size != part.bytes:
            raise RefusedError(
                f"{path} is {size} bytes, its manifest says {part.bytes}: cut off or changed",
                hint="copy it again from where it was exported; nothing was changed",
            )
        if part.sha256 is None:  # a storage host's manifest: ZFS's own record checksums are the check
            return
        digest = hashlib.sha256()
        bar = ProgressLine(f"checking {path}", size, self.progress_out)
        done = 0
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                done += len(chunk)
                bar(done)
        if digest.hexdigest() != part.sha256:
            raise RefusedError(
                f"{path}: its SHA-256 is not the one its manifest records: the stream is damaged",
                hint="copy it again from where it was exported; nothing was changed",
            )

    def _from_stdin(self, manifest: Manifest | None, name: str | None) -> ImportResult:
        if self.stdin is None:
            raise UsageError("no standard input to read")
        first = read_exactly(self.stdin, HEADER_SIZE)
        header = StreamHeader.parse(first, what="standard input")
        self._check(header, manifest.part("root") if manifest else None, "standard input")
        base = self._local_base(header.fromguid, "root") if header.incremental else None
        env_name = name or (manifest.environment if manifest else _env_of(header))
        dataset, _boot = self._new_name(env_name)
        stdin = self.stdin
        root = manifest.part("root") if manifest else None
        incoming = [
            _Incoming(
                "root",
                header,
                base,
                open=lambda: (FileEnd(stdin), root.bytes if root else None),
                sha256=root.sha256 if root else None,
                guid=header.toguid,
                first=first,
            )
        ]
        return self._receive_all(env_name, dataset, None, incoming, manifest, "standard input")

    def _from_host(self, location: StorageHost, name: str | None) -> ImportResult:
        host, machine, env, snap_name = split_store_source(location)
        remote = self.remote(host)
        container = host.environment(machine, env)
        try:
            root_snaps = remote.snapshots(f"{container}/root")
        except NotFoundError:
            root_snaps = []
        if not root_snaps:
            raise NotFoundError(
                f"{container} on {host.host} holds no export", hint="see 'bootagent store list'"
            )
        if snap_name:
            chosen = next((s for s in root_snaps if s.short == snap_name), None)
            if chosen is None:
                raise NotFoundError(f"{container}/root@{snap_name} is not on {host.host}")
        else:  # the newest complete export (a receive finished by a later export may have no manifest)
            chosen = next((s for s in reversed(root_snaps) if s.manifest), root_snaps[-1])
        manifest = Manifest.from_json(chosen.manifest, where=chosen.name) if chosen.manifest else None
        if manifest is None:
            raise RefusedError(
                f"{chosen.name} on {host.host} has no manifest: its export never finished",
                hint="export it again; the next export completes it",
            )
        env_name = name or manifest.environment
        dataset, boot = self._new_name(env_name)
        if len(manifest.parts) > 1 and boot is None:
            raise RefusedError("the export is a pair (/ and /boot) and this machine has no boot pool")
        incoming: list[_Incoming] = []
        for part in manifest.parts:
            stored = f"{container}/{part.part}"
            snaps = root_snaps if part.part == "root" else remote.snapshots(stored)
            wanted = next((s for s in snaps if s.guid == part.snapshot_guid), None)
            if wanted is None:
                raise RefusedError(f"{stored} on {host.host} lacks the snapshot its manifest names")
            base_local, base_remote = self._common_base(snaps, wanted.createtxg, part.part)
            raw = remote.value(stored, "encryption") not in (None, "off")
            args = send_flags(raw)
            if base_remote:
                args += ["-i", f"@{base_remote}"]
            args.append(wanted.name)
            header = StreamHeader(
                toname=wanted.name, toguid=wanted.guid, fromguid=0, creation=wanted.creation
            )
            # a whole stream of a stored snapshot is about its referenced size: no `zfs send -nP` round trip
            size = None if base_remote else wanted.referenced
            opener = self._remote_opener(remote, args, size)
            incoming.append(_Incoming(part.part, header, base_local, open=opener, guid=wanted.guid))
        return self._receive_all(env_name, dataset, boot, incoming, manifest, str(location))

    def _remote_opener(self, remote: Side, args: list[str], size: int | None) -> Opener:
        def opener() -> tuple[Proc | FileEnd, int | None]:
            estimate = size if size is not None else remote.estimate(args)
            return self.streams.reader(remote.argv(["zfs", "send", *args])), estimate

        return opener

    def _common_base(
        self, remote_snaps: list[Stored], wanted_txg: int, part: str
    ) -> tuple[str | None, str | None]:
        """The newest stored snapshot older than the wanted one that this machine also has (by guid)."""
        here = self._here_by_guid(part)
        for snap in reversed(remote_snaps):
            if snap.createtxg < wanted_txg and snap.guid in here:
                return here[snap.guid], snap.short
        return None, None

    # --- receiving -----------------------------------------------------------------------------------
    def _receive_all(
        self,
        env_name: str,
        dataset: str,
        boot: str | None,
        incoming: list[_Incoming],
        manifest: Manifest | None,
        source: str,
    ) -> ImportResult:
        targets = {"root": (dataset, "/"), "boot": (boot or "", BOOT_MOUNTPOINT)}
        snap_name = incoming[0].header.toname.partition("@")[2] or (manifest.snapshot if manifest else "")
        description = f"imported from {source}"
        if manifest:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(manifest.exported))
            description += f" ({manifest.label}, exported {when} UTC)"
        data = {"dataset": dataset, "snapshot": snap_name}
        if boot and len(incoming) > 1:
            data["boot"] = boot
        total, seconds = 0, 0.0
        made: list[str] = []
        with self.envs.journal.operation("import", env_name, detail=description, data=data):
            try:
                for item in incoming:
                    target, mountpoint = targets[item.part]
                    argv = ["zfs", "receive", "-u", "-o", "canmount=noauto", "-o", f"mountpoint={mountpoint}"]
                    if item.base:
                        argv += ["-o", f"origin={item.base}"]
                    argv.append(target)
                    src, estimate = item.open()
                    bar = ProgressLine(
                        f"import {item.header.toname or item.part}", estimate, self.progress_out
                    )
                    try:
                        sink = self.streams.writer(argv)
                    except BaseException:
                        src.kill()
                        raise
                    copied = copy(src, sink, first=item.first, progress=bar, checksum=item.sha256 is not None)
                    made.append(target)
                    bar.done(copied.bytes, copied.seconds)
                    total += copied.bytes
                    seconds += copied.seconds
                    if item.sha256 is not None and copied.sha256 != item.sha256:
                        raise RefusedError(
                            f"{source}: the {item.part} stream is not the one its manifest records (SHA-256)",
                            hint="the import was undone; copy the export again",
                        )
                    guid = self.local.value(f"{target}@{snap_name}", "guid") if snap_name else None
                    if item.guid is not None and guid != str(item.guid):
                        raise RefusedError(
                            f"{target}@{snap_name}: the received snapshot is not the exported one (guid)",
                            hint="the import was undone; nothing else was changed",
                        )
                props = {
                    Prop.DESCRIPTION.value: description[:1000],
                    Prop.CREATED_BY.value: CreatedBy.MANUAL.value,
                }
                if manifest and manifest.properties.get("kernel"):
                    props[Prop.KERNEL.value] = manifest.properties["kernel"]
                self.envs.zfs.set_user(dataset, props)
            except BaseException:
                for name in reversed(made):
                    LOG.error("the import of %s failed; removing %s", env_name, name)
                    try:
                        self.local.zfs(["zfs", "destroy", "-r", name], what=f"removing {name}")
                    except BootagentError as exc:
                        LOG.error(
                            "could not remove %s: %s (remove it with 'zfs destroy -r %s')", name, exc, name
                        )
                raise
        return ImportResult(env_name, dataset, snap_name, total, seconds, incoming[0].base)


def _file_opener(path: str) -> Opener:
    def opener() -> tuple[Proc | FileEnd, int | None]:
        return FileEnd(open(path, "rb")), os.path.getsize(path)

    return opener


def _env_of(header: StreamHeader) -> str:
    dataset = header.toname.partition("@")[0]
    return validate_name(dataset.rsplit("/", 1)[-1], what="environment name (from the stream; use --name)")
