"""The `zfs` command line over an in-memory pool (tests.fakes.FakeZfs), for the transfer code: the metadata
commands through a runner, `zfs send` and `zfs receive` as byte streams, and ssh to a second fake machine.

A fake stream is a real BEGIN record (so the header checks read what ZFS writes) followed by the files of
the snapshot as JSON and a SHA-256 of them, which the fake receive checks as ZFS checks its own records: a
damaged or cut stream is refused; with -s a cut one leaves a resume token.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shlex
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bootagent.errors import CommandError
from bootagent.model import DatasetKind
from bootagent.runner import CommandResult
from bootagent.transfer.stream import DMU_BACKUP_MAGIC
from bootagent.transfer.target import StorageHost
from tests.fakes import FakeZfs, Node


def guid_of(zfs: FakeZfs, name: str) -> int:
    node = zfs.nodes[name]
    if not node.guid:
        node.guid = (zfs12(name) << 24) | node.createtxg
    return node.guid


def zfs12(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFFFF


def make_stream(toname: str, toguid: int, fromguid: int, files: Mapping[str, str]) -> bytes:
    name = toname.encode()[:255].ljust(256, b"\0")
    header = struct.pack(
        "<IIQQQIIQQ256s", 0, 0, DMU_BACKUP_MAGIC, 17, 1_700_000_000, 2, 4, toguid, fromguid, name
    )
    payload = json.dumps(dict(files), sort_keys=True).encode()
    return header + struct.pack("<Q", len(payload)) + payload + hashlib.sha256(payload).digest()


def parse_stream(data: bytes) -> tuple[str, int, int, dict[str, str]] | str:
    """(toname, toguid, fromguid, files) or why it is refused."""
    if len(data) < 320:
        return "cannot receive: failed to read from stream"
    fields = struct.unpack("<IIQQQIIQQ256s", data[:312])
    if fields[2] != DMU_BACKUP_MAGIC:
        return "cannot receive: invalid stream (bad magic number)"
    (length,) = struct.unpack("<Q", data[312:320])
    payload = data[320 : 320 + length]
    digest = data[320 + length : 320 + length + 32]
    if len(payload) < length or len(digest) < 32:
        return "cannot receive incremental stream: checksum mismatch or incomplete stream"
    if hashlib.sha256(payload).digest() != digest:
        return "cannot receive: invalid stream (checksum mismatch)"
    toname = fields[9].split(b"\0", 1)[0].decode()
    return toname, fields[7], fields[8], json.loads(payload)


@dataclass
class Ended:
    """A process whose standard output or input is a buffer."""

    argv: list[str]
    stream: io.BytesIO
    on_finish: object = None  # callable(bytes) -> error text or None (a writer's receive)
    error: str | None = None  # a reader's failure, reported at finish
    killed: bool = False

    def finish(self) -> None:
        if self.on_finish is not None:
            data = self.stream.getvalue()
            self.error = self.on_finish(data)  # type: ignore[operator]
            self.on_finish = None
        if self.error:
            raise CommandError(self.argv, returncode=1, stderr=self.error + "\n")

    def kill(self) -> None:
        self.killed = True


@dataclass
class Machine:
    """One machine's zfs command over a FakeZfs."""

    zfs: FakeZfs
    log: list[list[str]] = field(default_factory=list)
    tokens: dict[str, tuple[str, int]] = field(
        default_factory=dict
    )  # dataset -> (toname, fromguid) cut short
    cut_after: int | None = None  # the next receive gets only this many bytes (a connection cut)
    damage_at: int | None = None  # the next send flips a byte here
    resumed: list[str] = field(default_factory=list)  # snapshots sent from a resume token
    fail_send: str | None = None  # the next send writes half its stream and fails with this

    # --- metadata --------------------------------------------------------------------------------------
    def run(self, argv: Sequence[str]) -> tuple[int, str, str]:
        args = list(argv)
        self.log.append(args)
        assert args[0] == "zfs", args
        verb = args[1]
        try:
            if verb == "list" and "-t" not in args:
                return self._names(args[2:])
            if verb == "list":
                return 0, self._list(args[2:]), ""
            if verb == "get":
                return 0, self._get(args[2:]), ""
            if verb == "create":
                return 0, self._create(args[2:]), ""
            if verb == "set":
                return 0, self._set(args[2:]), ""
            if verb == "destroy":
                return 0, self._destroy(args[2:]), ""
            if verb == "send" and "-n" in args:
                snap = args[-1]
                return 0, f"full\t{snap}\t{self._size(snap)}\nsize\t{self._size(snap)}\n", ""
        except LookupError as exc:
            return 1, "", f"cannot open '{exc.args[0]}': dataset does not exist\n"
        raise AssertionError(f"unexpected zfs command {args}")

    def _size(self, snap: str) -> int:
        if snap.startswith("-"):
            return 1000
        node = self.zfs.nodes.get(snap)
        return len(json.dumps(node.files)) + 360 if node else 0

    def _need(self, name: str) -> Node:
        if name not in self.zfs.nodes:
            raise LookupError(name)
        return self.zfs.nodes[name]

    def _names(self, args: list[str]) -> tuple[int, str, str]:
        """`zfs list [-H] [-o PROPS] NAME...`: a line for each that exists, an error for each that does not
        (exit 1), as zfs does."""
        props, names, i = ["name"], [], 0
        while i < len(args):
            if args[i] == "-o":
                props, i = args[i + 1].split(","), i + 2
            elif args[i].startswith("-"):
                i += 1
            else:
                names.append(args[i])
                i += 1
        out, err = "", ""
        for name in names:
            node = self.zfs.nodes.get(name)
            if node is None:
                err += f"cannot open '{name}': dataset does not exist\n"
            else:
                out += "\t".join(self._value(node, p) for p in props) + "\n"
        return (1 if err else 0), out, err

    def _list(self, args: list[str]) -> str:
        name = args[-1]
        self._need(name)
        props = args[args.index("-o") + 1].split(",")
        recursive = "-r" in args
        rows = [
            n
            for n in self.zfs.nodes.values()
            if n.kind is DatasetKind.SNAPSHOT
            and (n.name.split("@")[0] == name or (recursive and n.name.startswith(name + "/")))
        ]
        rows.sort(key=lambda n: n.createtxg)
        return "".join("\t".join(self._value(n, p) for p in props) + "\n" for n in rows)

    def _value(self, node: Node, prop: str) -> str:
        if prop == "name":
            return node.name
        if prop == "guid":
            return str(guid_of(self.zfs, node.name))
        if prop in ("createtxg", "creation", "used", "referenced"):
            return str(getattr(node, prop))
        if prop == "receive_resume_token":
            if node.name not in self.tokens:
                return "-"
            toname, fromguid = self.tokens[node.name]
            return f"1-{fromguid:x}-{toname.encode().hex()}"
        if prop == "encryption":
            return node.native.get("encryption", "off")
        return node.user_props.get(prop) or node.native.get(prop) or "-"

    def _get(self, args: list[str]) -> str:
        name, prop = args[-1], args[-2]
        if "-r" in args:
            names = [n for n in self.zfs.nodes if (n == name or n.startswith(name + "/")) and "@" not in n]
            return "".join(f"{n}\t{self._value(self.zfs.nodes[n], prop)}\n" for n in sorted(names))
        return self._value(self._need(name), prop) + "\n"

    def _create(self, args: list[str]) -> str:
        name = args[-1]
        if name in self.zfs.nodes:
            raise AssertionError(f"create of an existing {name}")
        self._need(name.rpartition("/")[0])
        props = dict(a.split("=", 1) for a in args[:-1] if "=" in a)
        self.zfs.add_fs(
            name,
            mountpoint=props.get("mountpoint"),
            canmount=props.get("canmount", "on"),
            user_props={k: v for k, v in props.items() if ":" in k},
        )
        return ""

    def _set(self, args: list[str]) -> str:
        node = self._need(args[-1])
        for assignment in args[:-1]:
            key, _, value = assignment.partition("=")
            node.user_props[key] = value
        return ""

    def _destroy(self, args: list[str]) -> str:
        name = args[-1]
        self._need(name)
        doomed = [
            n
            for n in self.zfs.nodes
            if n == name or (("-r" in args) and n.startswith((name + "/", name + "@")))
        ]
        if "-r" not in args and any(n.startswith(name + "@") for n in self.zfs.nodes):
            raise AssertionError(f"destroy of {name}, which has snapshots, without -r")
        for n in doomed:
            del self.zfs.nodes[n]
            self.tokens.pop(n, None)
        return ""

    # --- streams ---------------------------------------------------------------------------------------
    def send(self, args: list[str]) -> Ended:
        self.log.append(["zfs", "send", *args])
        if "-t" in args:
            _one, fromguid_hex, name_hex = args[args.index("-t") + 1].split("-")
            snap, fromguid = bytes.fromhex(name_hex).decode(), int(fromguid_hex, 16)
            self.resumed.append(snap)
            stream = make_stream(snap, guid_of(self.zfs, snap), fromguid, self.zfs.nodes[snap].files)
            return Ended(["zfs", "send", *args], io.BytesIO(stream))
        snap = args[-1]
        found = self.zfs.nodes.get(snap)
        if found is None:
            return Ended(
                ["zfs", "send", *args], io.BytesIO(b""), error=f"cannot open '{snap}': dataset does not exist"
            )
        fromguid = 0
        if "-i" in args:
            base = args[args.index("-i") + 1]
            base = snap.split("@")[0] + base if base.startswith("@") else base
            fromguid = guid_of(self.zfs, base)
        data = bytearray(make_stream(snap, guid_of(self.zfs, snap), fromguid, found.files))
        if self.damage_at is not None:
            data[self.damage_at] ^= 0xFF
            self.damage_at = None
        if self.fail_send is not None:
            error, self.fail_send = self.fail_send, None
            return Ended(["zfs", "send", *args], io.BytesIO(bytes(data[: len(data) // 2])), error=error)
        return Ended(["zfs", "send", *args], io.BytesIO(bytes(data)))

    def receive(self, args: list[str]) -> Ended:
        self.log.append(["zfs", "receive", *args])
        target = args[-1]
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        resumable = "-s" in args

        def finish(data: bytes) -> str | None:
            if self.cut_after is not None:
                data, self.cut_after = data[: self.cut_after], None
                whole = None
            else:
                whole = data
            parsed = parse_stream(data)
            if isinstance(parsed, str):
                if resumable and whole is None and len(data) >= 312:
                    toname = data[56:312].split(b"\0", 1)[0].decode()
                    (fromguid,) = struct.unpack("<Q", data[48:56])
                    if target not in self.zfs.nodes:
                        self.zfs.add_fs(target)
                    self.tokens[target] = (toname, fromguid)
                    return "cannot receive: connection lost; partially-complete state saved (resume token)"
                return parsed
            toname, toguid, fromguid, files = parsed
            snap_name = toname.split("@", 1)[1]
            if fromguid:
                origin = opts.get("origin")
                if origin:
                    if guid_of(self.zfs, origin) != fromguid:
                        return "cannot receive incremental stream: origin is not the stream's base"
                    if target in self.zfs.nodes:
                        return f"cannot receive: destination '{target}' exists"
                    self.zfs.add_fs(target, origin=origin)
                else:
                    if target not in self.zfs.nodes:
                        return f"cannot receive incremental stream: destination '{target}' does not exist"
                    newest = self.zfs.snapshots_of(target)
                    if not newest or guid_of(self.zfs, newest[-1].name) != fromguid:
                        return "cannot receive incremental stream: most recent snapshot does not match"
            if target in self.tokens and self.tokens[target][0] != toname:
                return f"cannot resume: '{target}' has a partial receive of another stream"
            if not fromguid and target in self.zfs.nodes and target not in self.tokens:
                return f"cannot receive new filesystem stream: destination '{target}' exists"
            if target not in self.zfs.nodes:
                if target.rpartition("/")[0] not in self.zfs.nodes:
                    return f"cannot receive: parent of '{target}' does not exist"
                self.zfs.add_fs(target)
            self.tokens.pop(target, None)
            fs = self.zfs.nodes[target]
            fs.files = dict(files)
            if "mountpoint" in opts:
                fs.mountpoint = opts["mountpoint"]
            if "canmount" in opts:
                fs.canmount = opts["canmount"]
            self.zfs.add_snap(f"{target}@{snap_name}", guid=toguid)
            return None

        return Ended(["zfs", "receive", *args], io.BytesIO(), on_finish=finish)


class Network:
    """This machine and storage hosts by name; ssh argv is routed to the host's Machine."""

    def __init__(self, here: Machine, **hosts: Machine) -> None:
        self.here = here
        self.hosts = hosts
        self.ssh: list[list[str]] = []
        self.masters: list[list[str]] = []  # master connections started and stopped

    def _route(self, argv: Sequence[str]) -> tuple[Machine, list[str]]:
        args = list(argv)
        if args[0] != "ssh":
            return self.here, args
        self.ssh.append(args)
        assert "BatchMode=yes" in args
        dest = args[args.index("--") - 1]
        host = dest.rpartition("@")[2]
        return self.hosts[host], shlex.split(args[-1])

    # Runner
    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 120.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        machine, args = self._route(argv)
        code, out, err = machine.run(args)
        if check and code != 0:
            raise CommandError(list(argv), returncode=code, stderr=err)
        return CommandResult(tuple(argv), code, out, err)

    # Streams
    @contextlib.contextmanager
    def multiplexed(self, host: StorageHost) -> Iterator[StorageHost]:
        """As ssh's master connection would: the commands inside carry its ControlPath."""
        self.masters.append(host.master_argv("/run/fake/control"))
        yield replace(host, control="/run/fake/control")
        self.masters.append(host.exit_argv("/run/fake/control"))

    def reader(self, argv: Sequence[str]) -> Ended:
        machine, args = self._route(argv)
        assert args[:2] == ["zfs", "send"], args
        return machine.send(args[2:])

    def writer(self, argv: Sequence[str]) -> Ended:
        machine, args = self._route(argv)
        assert args[:2] == ["zfs", "receive"], args
        return machine.receive(args[2:])
