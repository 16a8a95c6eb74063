"""Waiting for pool devices: monitor before enumeration, label filter, timeout."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bootagent.boot.devices import PoolDevice, wait_for_pool_devices


@dataclass
class Dev:
    device_node: str
    properties: dict[str, str] = field(default_factory=dict)


def member(node: str, pool: str) -> Dev:
    return Dev(node, {"ID_FS_TYPE": "zfs_member", "ID_FS_LABEL": pool, "ID_FS_UUID": "123"})


class FakeUdev:
    def __init__(self, present: list[Dev], events: list[Dev | None]) -> None:
        self.present = present
        self.events = events
        self.polls: list[float] = []

    def list_members(self) -> Iterable[Any]:
        return self.present

    def poll(self, timeout: float) -> Any | None:
        self.polls.append(timeout)
        return self.events.pop(0) if self.events else None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.5
        return self.t


def test_present_members_of_the_pool_only() -> None:
    udev = FakeUdev([member("/dev/vdb1", "tank"), member("/dev/vda3", "rpool"), Dev("/dev/vda1")], [])
    found = wait_for_pool_devices("rpool", timeout=5, source_factory=lambda: udev, clock=Clock())
    assert found == [PoolDevice("/dev/vda3", "rpool", "123")]
    assert udev.polls == []


def test_waits_for_a_late_device() -> None:
    udev = FakeUdev([], [None, member("/dev/sdx", "tank"), member("/dev/vda3", "rpool")])
    messages: list[str] = []
    found = wait_for_pool_devices(
        "rpool", timeout=30, source_factory=lambda: udev, clock=Clock(), progress=messages.append
    )
    assert [d.node for d in found] == ["/dev/vda3"]
    assert len(udev.polls) == 3
    assert messages[0].startswith("waiting for the devices of pool rpool")


def test_timeout_returns_nothing() -> None:
    udev = FakeUdev([], [])
    assert wait_for_pool_devices("rpool", timeout=3, source_factory=lambda: udev, clock=Clock()) == []
    assert udev.polls  # it did wait
