"""Waiting for the pool's devices in early boot, with pyudev.

udev's blkid builtin labels ZFS pool members: ID_FS_TYPE=zfs_member, ID_FS_LABEL=<pool name>. The monitor
is started BEFORE enumerating so that no device appearing in between is missed. (libblkid ignores pool
members smaller than 64 MiB; such toy pools are never seen here.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolDevice:
    node: str  # /dev/vda3
    pool: str
    pool_guid: str | None


class Udev(Protocol):
    """What we use of pyudev (a Context + Monitor); tests pass a fake."""

    def list_members(self) -> Iterable[Any]: ...

    def poll(self, timeout: float) -> Any | None: ...


class PyudevSource:
    """The real udev, through Debian's pyudev (which loads libudev.so.1 by name: no ldconfig needed)."""

    def __init__(self) -> None:
        import pyudev

        self._context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(self._context)
        self._monitor.filter_by(subsystem="block")
        self._monitor.start()

    def list_members(self) -> Iterable[Any]:
        return list(self._context.list_devices(subsystem="block", ID_FS_TYPE="zfs_member"))

    def poll(self, timeout: float) -> Any | None:
        return self._monitor.poll(timeout=timeout)


def _member(device: Any, pool: str | None) -> PoolDevice | None:
    props = device.properties
    if props.get("ID_FS_TYPE") != "zfs_member":
        return None
    label = props.get("ID_FS_LABEL")
    if pool is not None and label != pool:  # several property matches are OR-ed by pyudev: filter here
        return None
    node = device.device_node
    if not node:
        return None
    return PoolDevice(node=node, pool=label or "", pool_guid=props.get("ID_FS_UUID"))


def wait_for_pool_devices(
    pool: str | None,
    *,
    timeout: float,
    source_factory: Callable[[], Udev] = PyudevSource,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[PoolDevice]:
    """The pool's member devices, waiting up to `timeout` seconds for the first one to appear.

    With pool None, members of any pool count. Returns [] when nothing came in time; the caller says so
    and offers a retry or a shell.
    """
    source = source_factory()  # the monitor starts here, before the enumeration below
    found = {d.node: d for dev in source.list_members() if (d := _member(dev, pool)) is not None}
    deadline = clock() + timeout
    while not found:
        left = deadline - clock()
        if left <= 0:
            LOG.warning("no device of pool %s appeared within %.0f s", pool or "(any)", timeout)
            return []
        progress(f"waiting for the devices of pool {pool or '(any)'}: {left:.0f} s left")
        event = source.poll(min(left, 1.0))
        if event is not None and (d := _member(event, pool)) is not None:
            found[d.node] = d
    return sorted(found.values(), key=lambda d: d.node)
