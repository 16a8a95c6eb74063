"""The `zfs`, `zpool` and `mount` command lines: what libzfs_core cannot do, and the fallback for the rest.

Every command goes through the one runner (argv lists, LC_ALL=C). Output is parsed from `-H -p` (tab
separated, exact numbers), which OpenZFS 2.1 and 2.3 both print; `-j` exists only from 2.3. Failures are
mapped onto the error hierarchy by the stderr texts of real OpenZFS (`translate_command_error`).
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from bootagent import names
from bootagent.errors import (
    BootagentError,
    CommandError,
    InvalidNameError,
    NotFoundError,
    ReadOnlyPoolError,
    RefusedError,
)
from bootagent.model import PROP_PREFIX, DatasetInfo, DatasetKind, PoolHealth, PoolInfo, Prop
from bootagent.mounts import mount_table
from bootagent.runner import CommandResult, Runner, run
from bootagent.zfs.interface import DiffChange, DiffEntry

LOG = logging.getLogger(__name__)

# The native columns of `zfs list`, in the order parse_list() expects them.
LIST_COLUMNS = (
    "name",
    "type",
    "creation",
    "createtxg",
    "used",
    "referenced",
    "origin",
    "mountpoint",
    "canmount",
    "mounted",
)
POOL_COLUMNS = ("name", "health", "size", "free", "readonly", "bootfs")
UNSET = "-"
# reported by properties() whatever their source: what identifies a dataset and how it is encrypted
USER_PROPS = ",".join(p.value for p in Prop)  # by name: `all` would compute every native property too
ALWAYS_PROPS = frozenset({"guid", "type", "encryption", "keyformat", "keylocation", "encryptionroot"})
COPY_TIMEOUT = 4 * 3600.0  # a full copy of a root file system (the factory baseline), on a slow disk
WIPE_TIMEOUT = 24 * 3600.0  # overwriting every free block of a large pool

# (stderr fragment, error class, hint). The first match wins; fragments are from OpenZFS 2.1/2.3 libzfs.
_STDERR_RULES: tuple[tuple[str, type[BootagentError], str | None], ...] = (
    ("dataset does not exist", NotFoundError, "check the name; `zfs list -r POOL` shows what exists"),
    ("invalid character", InvalidNameError, names.HINT),
    ("name is too long", InvalidNameError, names.HINT),
    ("no such pool", NotFoundError, "import the pool first: zpool import -N POOL"),
    ("no such tag on this dataset", NotFoundError, "`zfs holds SNAPSHOT` shows the hold tags"),
    (
        "pool is read-only",
        ReadOnlyPoolError,
        "the pool is imported read-only; re-import it read-write to change it",
    ),
    ("read-only file system", ReadOnlyPoolError, "the pool is imported read-only; re-import it read-write"),
    ("has dependent clones", RefusedError, "destroy or promote the clones first"),
    ("snapshot is held", RefusedError, "release the hold first (`zfs holds` lists the tags)"),
    (
        "dataset is busy",
        RefusedError,
        "it is mounted, in use or held; unmount it or release its holds first",
    ),
    ("tag already exists on this dataset", RefusedError, "the snapshot already carries this hold"),
    ("dataset already exists", RefusedError, "choose another name"),
    ("more recent snapshots or bookmarks exist", RefusedError, "newer snapshots must be destroyed first"),
    ("pool may be in use from other system", RefusedError, "make sure no other system uses the pool"),
    ("permission denied", CommandError, "run as root"),
)


def translate_command_error(exc: CommandError, *, what: str | None = None) -> BootagentError:
    """Map a failed zfs/zpool/mount command onto the error hierarchy, with a readable message and a hint."""
    detail = _stderr_detail(exc.stderr) or exc.message
    message = f"{what}: {detail}" if what else detail
    lowered = exc.stderr.lower()
    for fragment, cls, hint in _STDERR_RULES:
        if fragment in lowered:
            if cls is CommandError:
                return CommandError(
                    exc.argv, returncode=exc.returncode, stderr=exc.stderr, message=message, hint=hint
                )
            if cls is ReadOnlyPoolError:
                return ReadOnlyPoolError(message, errno=errno.EROFS, hint=hint)
            return cls(message, hint=hint)
    return CommandError(
        exc.argv, returncode=exc.returncode, stderr=exc.stderr, message=message, hint=exc.hint
    )


def _stderr_detail(stderr: str) -> str:
    """The most telling line of a zfs error: the first `cannot ...` line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("cannot"):
            return line
    return lines[-1] if lines else ""


def _unset(value: str) -> str | None:
    return None if value in (UNSET, "") else value


def unescape_diff(field: str) -> str:
    """Undo `zfs diff`'s escapes: every byte outside '!'..'~' and the backslash print as `\\0ooo`."""
    raw = bytearray()
    pos = 0
    for match in re.finditer(r"\\0([0-7]{3})", field):
        raw += field[pos : match.start()].encode("utf-8", "surrogateescape")
        raw.append(int(match.group(1), 8) & 0xFF)
        pos = match.end()
    raw += field[pos:].encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "surrogateescape")


def parse_list(stdout: str) -> list[DatasetInfo]:
    """Parse `zfs list -H -p -o <LIST_COLUMNS>` (no user properties)."""
    records = []
    for line in stdout.splitlines():
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(LIST_COLUMNS):
            raise CommandError(
                ["zfs", "list"], returncode=0, message=f"zfs list printed an unexpected line: {line!r}"
            )
        values = dict(zip(LIST_COLUMNS, fields, strict=True))
        records.append(
            DatasetInfo(
                name=values["name"],
                kind=DatasetKind(values["type"]),
                creation=int(values["creation"]),
                createtxg=int(values["createtxg"]),
                used=int(values["used"]),
                referenced=int(values["referenced"]),
                origin=_unset(values["origin"]),
                mountpoint=_unset(values["mountpoint"]),
                canmount=_unset(values["canmount"]),
                mounted=values["mounted"] == "yes",
            )
        )
    return records


def parse_user_props(
    stdout: str, names: Iterable[str], prefix: str = PROP_PREFIX
) -> dict[str, dict[str, str]]:
    """Parse `zfs get -H -p -o name,property,value` into {dataset: {property: value}} for `prefix` properties.

    A value may contain newlines: a line that does not start with a known dataset name continues the value
    of the line before it.
    """
    known = set(names)
    result: dict[str, dict[str, str]] = {}
    last: tuple[str, str] | None = None
    for line in stdout.removesuffix("\n").split("\n"):
        fields = line.split("\t", 2)
        if len(fields) == 3 and fields[0] in known:
            name, prop, value = fields
            last = (name, prop) if prop.startswith(prefix) else None
            if last:
                result.setdefault(name, {})[prop] = value
        elif last is not None:
            name, prop = last
            result[name][prop] += "\n" + line
    return result


def parse_diff(stdout: str, mountpoint: str) -> list[DiffEntry]:
    """Parse `zfs diff -H` output; paths become relative to the file system's root (starting with '/')."""
    prefix = "" if mountpoint == "/" else mountpoint.rstrip("/")

    def relative(path: str) -> str:
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :]
        return path or "/"

    entries = []
    for line in stdout.splitlines():
        if not line:
            continue
        fields = line.split("\t")
        try:
            change = DiffChange(fields[0])
        except ValueError:
            LOG.warning("zfs diff: skipping an unexpected line %r", line)
            continue
        path = relative(unescape_diff(fields[1]))
        new_path = relative(unescape_diff(fields[2])) if change is DiffChange.RENAMED else None
        entries.append(DiffEntry(change, path, new_path))
    return entries


def _is_snapshot(name: str) -> bool:
    return "@" in name


def _depth(name: str) -> int:
    return name.count("/")


def destroy_order(names: Iterable[str]) -> list[str]:
    """Snapshots first, then file systems deepest first (children before their parents)."""
    unique = list(dict.fromkeys(names))
    snapshots = [n for n in unique if _is_snapshot(n)]
    filesystems = sorted((n for n in unique if not _is_snapshot(n)), key=_depth, reverse=True)
    return snapshots + filesystems


def _props_args(option: str, props: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in props.items():
        args += [option, f"{key}={value}"]
    return args


class ZfsCli:
    """The zfs/zpool/mount command lines behind one runner."""

    def __init__(self, runner: Runner = run, *, mounts_path: str = "/proc/self/mounts") -> None:
        self._runner = runner
        self._mounts_path = mounts_path

    def _run(self, argv: Sequence[str], *, what: str | None = None) -> CommandResult:
        try:
            return self._runner(argv)
        except CommandError as exc:
            raise translate_command_error(exc, what=what) from None

    # --- pools -----------------------------------------------------------------------------------------
    def pool_info(self, pool: str) -> PoolInfo:
        try:
            result = self._runner(["zpool", "list", "-H", "-p", "-o", ",".join(POOL_COLUMNS), pool])
        except CommandError as exc:
            if "no such pool" in exc.stderr:
                raise NotFoundError(
                    f"the pool {pool!r} is not imported",
                    hint=f"import it: zpool import -N {pool} (`zpool import` lists the pools it can find)",
                ) from None
            raise translate_command_error(exc, what=f"reading pool {pool}") from None
        line = result.stdout.splitlines()[0] if result.stdout else ""
        fields = line.split("\t")
        if len(fields) != len(POOL_COLUMNS):
            raise CommandError(
                result.argv, returncode=0, message=f"zpool list printed an unexpected line: {line!r}"
            )
        values = dict(zip(POOL_COLUMNS, fields, strict=True))
        return PoolInfo(
            name=values["name"],
            health=PoolHealth.parse(values["health"]),
            size=int(values["size"]),
            free=int(values["free"]),
            readonly=values["readonly"] == "on",
            bootfs=_unset(values["bootfs"]),
        )

    def imported_pools(self) -> list[str]:
        result = self._run(["zpool", "list", "-H", "-o", "name"], what="listing the imported pools")
        return [line for line in result.stdout.splitlines() if line]

    def pool_guid(self, pool: str) -> int:
        result = self._run(
            ["zpool", "get", "-H", "-p", "-o", "value", "guid", pool], what=f"reading the guid of pool {pool}"
        )
        text = result.stdout.strip()
        if not text.isdigit():
            raise CommandError(result.argv, returncode=0, message=f"zpool get guid printed {text!r}")
        return int(text)

    def import_pool(
        self, pool: str, *, readonly: bool, altroot: str | None = None, force: bool = False
    ) -> None:
        argv = ["zpool", "import", "-N"]
        if force:
            argv.append("-f")
        if readonly:
            argv += ["-o", "readonly=on"]
        if altroot is not None:
            argv += ["-R", altroot]
        self._run([*argv, pool], what=f"importing pool {pool}")

    def export_pool(self, pool: str) -> None:
        self._run(["zpool", "export", pool], what=f"exporting pool {pool}")

    def zpool_status_healthy(self, pool: str) -> bool:
        """`zpool status -x POOL` says "pool 'POOL' is healthy" when nothing is wrong."""
        result = self._run(["zpool", "status", "-x", pool], what=f"reading the status of pool {pool}")
        return "is healthy" in result.stdout

    def set_bootfs(self, pool: str, dataset: str) -> None:
        self._run(["zpool", "set", f"bootfs={dataset}", pool], what=f"setting bootfs of {pool}")

    # --- reading ---------------------------------------------------------------------------------------
    def list_tree(self, root: str) -> list[DatasetInfo]:
        """Native columns from `zfs list`, then the LOCALLY set `org.bootagent:*` properties from `zfs get`.

        `zfs list -o org.bootagent:x` would also show inherited values (a snapshot inherits its file
        system's user properties), which would make every snapshot of a `keep=on` environment look kept;
        the channel-program listing reports local values only, and so does this.
        """
        types = "filesystem,snapshot"
        listed = self._run(
            ["zfs", "list", "-H", "-p", "-r", "-t", types, "-o", ",".join(LIST_COLUMNS), root],
            what=f"listing {root}",
        )
        records = parse_list(listed.stdout)
        got = self._run(
            [
                *("zfs", "get", "-H", "-p", "-r", "-t", types, "-s", "local"),
                *("-o", "name,property,value", USER_PROPS, root),
            ],
            what=f"reading the properties of {root}",
        )
        user = parse_user_props(got.stdout, (r.name for r in records))
        mounted = set(self.mounts().values())  # `mounted` says nothing useful for a mounted snapshot
        return [
            replace(r, user_props=user.get(r.name, r.user_props), mounted=r.mounted or r.name in mounted)
            for r in records
        ]

    def exists(self, name: str) -> bool:
        result = self._runner(["zfs", "list", "-H", "-o", "name", name], check=False)
        if result.returncode == 0:
            return True
        if "dataset does not exist" in result.stderr or "invalid character" in result.stderr:
            return False  # a name ZFS refuses names nothing (libzfs_core says the same)
        raise translate_command_error(
            CommandError(result.argv, returncode=result.returncode, stderr=result.stderr),
            what=f"checking {name}",
        )

    def holds(self, snapshot: str) -> frozenset[str]:
        result = self._run(["zfs", "holds", "-H", snapshot], what=f"reading the holds of {snapshot}")
        tags = set()
        for line in result.stdout.splitlines():
            fields = line.split("\t")
            if len(fields) >= 2:
                tags.add(fields[1])
        return frozenset(tags)

    def mounts(self) -> dict[str, str]:
        """Mounted ZFS file systems from /proc/self/mounts: mount point -> dataset."""
        return {m.point: m.source for m in mount_table(self._mounts_path) if m.fstype == "zfs"}

    def diff(self, older: str, newer: str) -> list[DiffEntry]:
        """`zfs diff -H`; the file system must be mounted (zfs diff prints paths below its mount point)."""
        filesystem = older.split("@", 1)[0]
        mountpoint = next((path for path, ds in self.mounts().items() if ds == filesystem), None)
        if mountpoint is None:
            raise RefusedError(
                f"cannot compare {older} and {newer}: {filesystem} is not mounted",
                hint="zfs diff needs the file system mounted; mount it first",
            )
        result = self._run(["zfs", "diff", "-H", older, newer], what=f"comparing {older} and {newer}")
        return parse_diff(result.stdout, mountpoint)

    # --- changing --------------------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        """One `zfs snapshot` with several names is atomic (one lzc_snapshot call inside)."""
        if not names:
            return
        self._run(
            ["zfs", "snapshot", *_props_args("-o", user_props), *names],
            what=f"creating snapshot{'s' if len(names) > 1 else ''} {', '.join(names)}",
        )

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        self._run(
            ["zfs", "clone", *_props_args("-o", user_props), origin, name],
            what=f"cloning {origin} into {name}",
        )

    def set_native(self, name: str, props: Mapping[str, str]) -> None:
        if props:
            self._run(
                ["zfs", "set", *(f"{k}={v}" for k, v in props.items()), name],
                what=f"setting {', '.join(props)} on {name}",
            )

    def set_user(self, name: str, props: Mapping[str, str]) -> None:
        """All properties in one `zfs set` (one ioctl, so one transaction group)."""
        self.set_native(name, props)

    def inherit_user(self, name: str, prop: str) -> None:
        self._run(["zfs", "inherit", prop, name], what=f"clearing {prop} on {name}")

    def destroy(self, names: Sequence[str]) -> None:
        """One `zfs destroy` per name, snapshots first: NOT atomic (the channel program is)."""
        for name in destroy_order(names):
            self._run(["zfs", "destroy", name], what=f"destroying {name}")

    def rollback_destroying_newer(self, snapshot: str) -> list[str]:
        """`zfs rollback -r`, after checking that no newer snapshot is held or cloned.

        `zfs rollback -r` destroys the newer snapshots one by one, so a held one in the middle would leave a
        half-done rollback; the check first makes that refuse before anything changes. Returns the destroyed
        snapshots, oldest first.
        """
        filesystem = snapshot.split("@", 1)[0]
        listed = self._run(
            [
                *("zfs", "list", "-H", "-p", "-t", "snapshot", "-d", "1"),
                *("-o", "name,createtxg,userrefs,clones", filesystem),
            ],
            what=f"listing the snapshots of {filesystem}",
        )
        rows = [line.split("\t") for line in listed.stdout.splitlines() if line]
        txgs = {row[0]: int(row[1]) for row in rows}
        if snapshot not in txgs:
            raise NotFoundError(f"cannot roll back to {snapshot}: the snapshot does not exist")
        newer_rows = sorted((r for r in rows if int(r[1]) > txgs[snapshot]), key=lambda r: int(r[1]))
        blocked = []
        for name, _txg, userrefs, clones in newer_rows:
            if userrefs not in ("0", "", UNSET):
                blocked.append(f"{name} is held")
            if clones not in ("", UNSET):
                blocked.append(f"{name} has clones ({clones})")
        if blocked:
            raise RefusedError(
                f"cannot roll back to {snapshot}: " + "; ".join(blocked),
                hint="release the holds and destroy or promote the clones first; nothing was changed",
            )
        self._run(["zfs", "rollback", "-r", snapshot], what=f"rolling back to {snapshot}")
        return [row[0] for row in newer_rows]

    def promote(self, name: str) -> None:
        self._run(["zfs", "promote", name], what=f"promoting {name}")

    def rename(self, old: str, new: str) -> None:
        self._run(["zfs", "rename", old, new], what=f"renaming {old} to {new}")

    def hold(self, snapshot: str, tag: str) -> None:
        self._run(["zfs", "hold", tag, snapshot], what=f"holding {snapshot}")

    def release(self, snapshot: str, tag: str) -> None:
        self._run(["zfs", "release", tag, snapshot], what=f"releasing {tag} on {snapshot}")

    def mount(self, name: str, path: str) -> None:
        """Read-only: a file system with `zfsutil` (whatever its mountpoint property), a snapshot without."""
        options = "ro" if _is_snapshot(name) else "ro,zfsutil"
        self._run(["mount", "-t", "zfs", "-o", options, name, path], what=f"mounting {name} at {path}")

    # --- for the factory reset -------------------------------------------------------------------------
    def properties(self, name: str) -> dict[str, str]:
        """`zfs get all`: what is set locally (or was received), and the identity and encryption ones."""
        result = self._run(
            ["zfs", "get", "-H", "-p", "-o", "property,value,source", "all", name],
            what=f"reading the properties of {name}",
        )
        out: dict[str, str] = {}
        for line in result.stdout.splitlines():
            fields = line.split("\t")
            if len(fields) != 3:
                continue
            prop, value, source = fields
            if prop in ALWAYS_PROPS or source in ("local", "received"):
                out[prop] = value
        return out

    def create(self, name: str, props: Mapping[str, str]) -> None:
        self._run(["zfs", "create", *_props_args("-o", props), name], what=f"creating {name}")

    def copy(self, snapshot: str, target: str, props: Mapping[str, str]) -> None:
        """`zfs send SNAP | zfs receive -u -o ... TARGET` (bash for pipefail: a failed send fails it)."""
        script = (
            'set -o pipefail; snap=$1; target=$2; shift 2; zfs send "$snap" | zfs receive -u "$@" "$target"'
        )
        try:
            self._runner(
                ["bash", "-c", script, "copy", snapshot, target, *_props_args("-o", props)],
                timeout=COPY_TIMEOUT,
            )
        except CommandError as exc:
            raise translate_command_error(exc, what=f"copying {snapshot} to {target}") from None

    def wipe_free_space(self, pool: str) -> None:
        for verb in ("initialize", "trim"):
            try:
                self._runner(["zpool", verb, "-w", pool], timeout=WIPE_TIMEOUT)
            except CommandError as exc:
                if verb == "trim" and "trim operations are not supported" in exc.stderr.lower():
                    LOG.info("the devices of %s do not support trim; free space was overwritten only", pool)
                    continue
                raise translate_command_error(exc, what=f"zpool {verb} {pool}") from None

    def unmount(self, path: str) -> None:
        self._run(["umount", path], what=f"unmounting {path}")
