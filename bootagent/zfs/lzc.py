"""A thin adapter over pyzfs (`libzfs_core`): str names in, bootagent errors out.

`libzfs_core` is imported on the first call only (the import parses C declarations: seconds in the early-boot
VM). Before that first call the shared libraries are pinned to full paths, so cffi does not need
`ctypes.util.find_library` (which runs /sbin/ldconfig, absent from an initramfs).
"""

from __future__ import annotations

import errno
import glob
import importlib
import logging
import os
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from bootagent.errors import (
    BootagentError,
    InvalidNameError,
    NotFoundError,
    ReadOnlyPoolError,
    RefusedError,
    ZfsError,
)

LOG = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_INSTRLIMIT = 10_000_000  # ZCP_DEFAULT_INSTRLIMIT; the module parameter zfs_lua_max_instrlimit is 1e8
DEFAULT_MEMLIMIT = 10 * 1024 * 1024  # ZCP_DEFAULT_MEMLIMIT; zfs_lua_max_memlimit is 100 MiB

# pyzfs's binding modules and the shared library each one opens.
_LIBRARIES = (("libnvpair", "libnvpair.so"), ("libzfs_core", "libzfs_core.so"))


class LzcUnavailableError(ZfsError):
    """libzfs_core cannot be used here: pyzfs missing, no /dev/zfs, or the library cannot be loaded."""


class ChannelProgramLimitError(ZfsError):
    """A channel program hit its instruction or memory limit (ZCPTimeout, ZCPMemoryError, ZCPSpaceError)."""


def default_lib_dirs() -> tuple[str, ...]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"] if multiarch else []
    return (*dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")


def find_library(stem: str, lib_dirs: Sequence[str]) -> str | None:
    """The full path of `stem` (e.g. 'libzfs_core.so') or its versioned file in the first dir that has one."""
    for directory in lib_dirs:
        exact = os.path.join(directory, stem)
        if os.path.exists(exact):
            return exact
        versioned = sorted(glob.glob(glob.escape(exact) + ".[0-9]*"), key=len)
        if versioned:
            return versioned[0]
    return None


def pin_shared_libraries(lib_dirs: Sequence[str]) -> None:
    """Point pyzfs's lazy cffi libraries at full paths before they are opened (no ldconfig needed)."""
    for module_name, stem in _LIBRARIES:
        module = importlib.import_module(f"libzfs_core.bindings.{module_name}")
        lazy = getattr(module, "lib", None)
        state = getattr(lazy, "__dict__", {})
        if "_libname" not in state or state.get("_lib") is not None:
            continue  # not pyzfs's LazyLibrary, or already opened
        path = find_library(stem, lib_dirs)
        if path is not None:
            LOG.debug("libzfs_core: using %s", path)
            state["_libname"] = path


def to_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def to_str(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def encode_args(value: Any) -> Any:
    """Python arguments -> what pyzfs's nvlist_in accepts and a channel program can read.

    Strings become bytes; numbers become decimal strings (ZCP cannot read uint64 nvpairs, and nvlist_in makes
    every int a uint64); an empty list becomes an empty table (nvlist_in cannot encode an empty array).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return to_bytes(value)
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, Mapping):
        return {to_bytes(str(k)): encode_args(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_args(v) for v in value] if value else {}
    raise TypeError(f"cannot pass {type(value).__name__} to a channel program")


def convert_result(value: Any) -> Any:
    """A channel program's result as pyzfs returns it -> plain Python.

    bytes keys and values become str; a Lua array comes back as a table keyed "1", "2", ... and becomes a
    list; an empty table stays an empty dict (Lua cannot tell an empty array from an empty map).
    """
    if isinstance(value, bytes):
        return to_str(value)
    if isinstance(value, list | tuple):
        return [convert_result(v) for v in value]
    if isinstance(value, dict):
        items = {to_str(k): convert_result(v) for k, v in value.items()}
        keys = list(items)
        if keys and all(k.isdigit() for k in keys):
            numbers = sorted(int(k) for k in keys)
            if numbers == list(range(1, len(numbers) + 1)):
                return [items[str(n)] for n in numbers]
        return items
    return value


def _name_and_reason(exc: Any) -> tuple[str | None, str]:
    """pyzfs's (name, message) of an error, repairing the generic fallback that swaps them.

    `_generic_exception` calls ZFSGenericError(err, message, name) against __init__(errno, name, message):
    the name lands in .message and the text in .name. The message is always a str and the name bytes or
    None, so the types tell which is which.
    """
    name, reason = getattr(exc, "name", None), getattr(exc, "message", None)
    if isinstance(name, str) and not isinstance(reason, str):
        name, reason = reason, name
    text = reason if isinstance(reason, str) else type(exc).__name__
    return (to_str(name) if isinstance(name, bytes | str) else None), text


def translate_error(exc: Exception, *, what: str) -> BootagentError:
    """A pyzfs exception -> the bootagent error with a user-facing message and hint."""
    from libzfs_core import exceptions as lzc_exc  # only after the first lazy import

    if isinstance(exc, lzc_exc.MultipleOperationsFailure):
        parts = [translate_error(e, what=what) for e in exc.errors]
        if not parts:
            return ZfsError(f"{what}: {exc}", errno=exc.errno)
        texts = [p.message.removeprefix(f"{what}: ") for p in parts]
        suppressed = getattr(exc, "suppressed_count", 0)
        if suppressed:
            texts.append(f"and {suppressed} more")
        first = parts[0]
        message = f"{what}: {'; '.join(texts)}"
        if isinstance(first, ZfsError):
            return type(first)(message, errno=first.errno, hint=first.hint)
        return type(first)(message, hint=first.hint)

    code = getattr(exc, "errno", None)
    name, reason = _name_and_reason(exc)
    detail = f"{name}: {reason[:1].lower()}{reason[1:]}" if name else reason
    message = f"{what}: {detail}"

    if isinstance(exc, lzc_exc.ZFSInitializationFailed):
        return LzcUnavailableError(
            f"{what}: libzfs_core could not be initialised ({os.strerror(code or 0)})",
            errno=code,
            hint="is the zfs kernel module loaded (modprobe zfs) and /dev/zfs present?",
        )
    if isinstance(exc, lzc_exc.ReadOnlyPool):
        return ReadOnlyPoolError(
            message,
            errno=errno.EROFS,
            hint="the pool is imported read-only; export it and import it read-write to change anything",
        )
    not_found = (
        lzc_exc.DatasetNotFound,
        lzc_exc.PoolNotFound,
        lzc_exc.ParentNotFound,
        lzc_exc.HoldNotFound,
        lzc_exc.BookmarkNotFound,
    )
    if isinstance(exc, not_found):
        return NotFoundError(message, hint="check the name; `zfs list -t all -r POOL` shows what exists")
    refusals: tuple[tuple[type[Exception], str], ...] = (
        (lzc_exc.SnapshotIsHeld, "release the hold first (`zfs holds` lists the tags)"),
        (lzc_exc.SnapshotIsCloned, "destroy or promote the clones first"),
        (lzc_exc.DatasetBusy, "it is mounted or in use; unmount it first"),
        (lzc_exc.SnapshotNotLatest, "only the newest snapshot can be rolled back to"),
        (lzc_exc.NotClone, "only a clone can be promoted"),
        (lzc_exc.HoldExists, "the snapshot already carries this hold"),
        (lzc_exc.DatasetExists, "choose another name"),
    )
    for cls, hint in refusals:
        if isinstance(exc, cls):
            return RefusedError(message, hint=hint)
    if isinstance(exc, lzc_exc.NameInvalid | lzc_exc.NameTooLong):
        return InvalidNameError(message)
    if isinstance(exc, lzc_exc.ZCPMemoryError):
        return ChannelProgramLimitError(
            f"{what}: the channel program's result is larger than its memory limit",
            errno=code,
            hint="the zfs command line can list it instead",
        )
    if isinstance(exc, lzc_exc.ZCPTimeout | lzc_exc.ZCPSpaceError):
        return ChannelProgramLimitError(f"{what}: {reason.lower()}", errno=code)
    if isinstance(exc, lzc_exc.ZCPRuntimeError | lzc_exc.ZCPSyntaxError):
        details = getattr(exc, "details", None)
        text = to_str(details) if isinstance(details, bytes | str) else repr(details)
        return ZfsError(f"{what}: channel program failed: {text}", errno=code)
    if isinstance(exc, lzc_exc.ZCPPermissionError):
        return ZfsError(f"{what}: {reason.lower()}", errno=code, hint="run as root")
    if isinstance(exc, lzc_exc.NoSpace | lzc_exc.QuotaExceeded):
        return ZfsError(message, errno=code, hint="free some space in the pool (destroy old snapshots)")
    return ZfsError(f"{message} (errno {code})" if code else message, errno=code)


class Lzc:
    """libzfs_core calls with str names; every failure is a bootagent error."""

    def __init__(self, *, dev_zfs: str = "/dev/zfs", lib_dirs: Sequence[str] | None = None) -> None:
        self._dev_zfs = dev_zfs
        self._lib_dirs = tuple(lib_dirs) if lib_dirs is not None else default_lib_dirs()
        self._module: Any = None
        self._available: bool | None = None

    def _lzc(self) -> Any:
        if self._module is None:
            try:
                import libzfs_core  # lazy: costs seconds at boot
            except ImportError as exc:
                raise LzcUnavailableError(
                    f"pyzfs cannot be imported: {exc}", hint="install python3-pyzfs"
                ) from exc
            pin_shared_libraries(self._lib_dirs)
            self._module = libzfs_core
        return self._module

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        module = self._lzc()
        try:
            return fn(module)
        except module.exceptions.ZFSError as exc:
            raise translate_error(exc, what=what) from exc
        except OSError as exc:  # cffi could not open libzfs_core / libnvpair
            raise LzcUnavailableError(f"{what}: {exc}", hint="install libzfs_core (zfsutils-linux)") from exc

    def available(self) -> bool:
        """Whether libzfs_core can be used: pyzfs imports, /dev/zfs opens and the library initialises."""
        if self._available is None:
            self._available = self._probe()
        return self._available

    def _probe(self) -> bool:
        try:
            fd = os.open(self._dev_zfs, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            LOG.info("libzfs_core not used: cannot open %s: %s", self._dev_zfs, exc.strerror)
            return False
        os.close(fd)
        try:
            self._call("probing libzfs_core", lambda m: m.lzc_exists(b""))
        except ZfsError as exc:
            LOG.info("libzfs_core not used: %s", exc)
            return False
        return True

    # --- reading ---------------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return bool(self._call(f"checking {name}", lambda m: m.lzc_exists(to_bytes(name))))

    def get_holds(self, snapshot: str) -> frozenset[str]:
        holds = self._call(f"reading the holds of {snapshot}", lambda m: m.lzc_get_holds(to_bytes(snapshot)))
        return frozenset(to_str(tag) for tag in holds)

    # --- changing --------------------------------------------------------------------------------------
    def snapshot(self, names: Sequence[str], user_props: Mapping[str, str]) -> None:
        """All snapshots or none (one lzc_snapshot call), each carrying the user properties."""
        snaps = [to_bytes(n) for n in names]
        props = {to_bytes(k): to_bytes(v) for k, v in user_props.items()}
        self._call(f"creating snapshot(s) {', '.join(names)}", lambda m: m.lzc_snapshot(snaps, props))

    def clone(self, name: str, origin: str, user_props: Mapping[str, str]) -> None:
        props = {to_bytes(k): to_bytes(v) for k, v in user_props.items()}
        self._call(
            f"cloning {origin} into {name}",
            lambda m: m.lzc_clone(to_bytes(name), to_bytes(origin), props),
        )

    def destroy_snapshots(self, names: Sequence[str], *, defer: bool = False) -> None:
        snaps = [to_bytes(n) for n in names]
        self._call(f"destroying {', '.join(names)}", lambda m: m.lzc_destroy_snaps(snaps, defer))

    def destroy_filesystem(self, name: str) -> None:
        self._call(f"destroying {name}", lambda m: m.lzc_destroy(to_bytes(name)))

    def hold(self, snapshot: str, tag: str) -> None:
        missing = self._call(f"holding {snapshot}", lambda m: m.lzc_hold({to_bytes(snapshot): to_bytes(tag)}))
        if missing:  # lzc_hold skips snapshots that do not exist instead of failing
            raise NotFoundError(f"holding {snapshot}: the snapshot does not exist")

    def release(self, snapshot: str, tag: str) -> None:
        missing = self._call(
            f"releasing {tag} on {snapshot}",
            lambda m: m.lzc_release({to_bytes(snapshot): [to_bytes(tag)]}),
        )
        if missing:  # a missing snapshot or tag is reported, not raised
            raise NotFoundError(
                f"releasing {tag} on {snapshot}: no such hold",
                hint="`zfs holds SNAPSHOT` lists the tags",
            )

    def promote(self, name: str) -> None:
        self._call(f"promoting {name}", lambda m: m.lzc_promote(to_bytes(name)))

    def rename(self, old: str, new: str) -> None:
        """A raw rename: nothing is unmounted or remounted."""
        self._call(f"renaming {old} to {new}", lambda m: m.lzc_rename(to_bytes(old), to_bytes(new)))

    def rollback_to(self, filesystem: str, snapshot: str) -> None:
        """Roll back to `snapshot`, which must be the newest one (else RefusedError)."""
        self._call(
            f"rolling {filesystem} back to {snapshot}",
            lambda m: m.lzc_rollback_to(to_bytes(filesystem), to_bytes(snapshot)),
        )

    def channel_program(
        self,
        pool: str,
        program: str,
        args: Mapping[str, Any],
        *,
        sync: bool,
        instrlimit: int = DEFAULT_INSTRLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
        what: str = "running a channel program",
    ) -> Any:
        """Run a Lua channel program; `args` arrive as `(...).argv`. Returns the converted result.

        `sync=False` runs in open context (read-only, faster). Every channel program fails with
        ReadOnlyPoolError on a pool imported read-only.
        """
        params = encode_args(args)

        def call(m: Any) -> Any:
            fn = m.lzc_channel_program if sync else m.lzc_channel_program_nosync
            return fn(to_bytes(pool), to_bytes(program), instrlimit, memlimit, params)

        return convert_result(self._call(what, call))
