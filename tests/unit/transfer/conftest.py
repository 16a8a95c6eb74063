"""Fixtures: this machine (the reference pool), a storage host (tank/exports), the network between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal
from bootagent.model import Actor
from tests.fakes import FakeZfs, reference_pool
from tests.unit.transfer.machines import NOW
from tests.unit.transfer.zfs_commands import Machine, Network


@pytest.fixture
def here() -> Machine:
    return Machine(reference_pool())


@pytest.fixture
def store() -> Machine:
    zfs = FakeZfs("tank")
    zfs.add_fs("tank/exports", canmount="off", mountpoint="none")
    return Machine(zfs)


@pytest.fixture
def net(here: Machine, store: Machine) -> Network:
    return Network(here, store1=store)


@pytest.fixture
def envs(here: Machine, tmp_path: Path) -> BootEnvironments:
    (tmp_path / "grub").mkdir()
    grubenv = GrubenvFile(tmp_path / "grub" / "grubenv")
    grubenv.update({"bootagent_default": "beta"})
    journal = Journal(tmp_path / "state", actor=Actor.CLI, clock=lambda: NOW)
    return BootEnvironments(
        here.zfs,
        Config(pool="rpool", grubenv=str(grubenv.path)),
        "rpool",
        journal,
        BootStore(here.zfs, grubenv),
        clock=lambda: NOW,
    )
