"""A pool as an appliance has it: environments, a config dataset, customer data (plain, marked, encrypted,
nested), an unclassified dataset, the state dataset, and a factory baseline sealed from beta."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal
from bootagent.model import Actor
from bootagent.reset.baseline import seal
from bootagent.reset.run import ResetTarget
from tests.fakes import FakeZfs, reference_pool

NOW = 1_800_000_000.0
CUSTOMER = "org.bootagent:customer"


def appliance_pool() -> FakeZfs:
    z = reference_pool()
    z.add_fs("rpool/customer", canmount="off", mountpoint="/srv/customer")
    z.add_fs("rpool/customer/acme", files={"/data": "acme"})  # not marked: unclassified
    z.add_fs(
        "rpool/customer/globex",
        user_props={CUSTOMER: "on"},
        native={"compression": "zstd"},
        files={"/data": "globex"},
    )
    z.add_snap("rpool/customer/globex@daily")
    z.add_fs("rpool/customer/globex/db", files={"/db": "rows"})
    z.add_fs(
        "rpool/customer/vault",
        user_props={CUSTOMER: "on"},
        native={"encryption": "aes-256-gcm", "keyformat": "passphrase", "keylocation": "prompt"},
        files={"/secret": "s"},
    )
    z.add_fs("rpool/scratch", mountpoint="/scratch", files={"/x": "y"})
    z.mounted.clear()  # as the early-boot agent sees the pool: nothing mounted
    return z


@pytest.fixture
def zfs() -> FakeZfs:
    return appliance_pool()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(pool="rpool", grubenv=str(tmp_path / "grub" / "grubenv"))


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "state", actor=Actor.AGENT, clock=lambda: NOW)


@pytest.fixture
def grubenv(tmp_path: Path) -> GrubenvFile:
    (tmp_path / "grub").mkdir()
    env = GrubenvFile(tmp_path / "grub" / "grubenv")
    env.update({"bootagent_default": "beta", "saved_entry": "keep-me"})
    return env


@pytest.fixture
def sealed(zfs: FakeZfs, config: Config, journal: Journal) -> FakeZfs:
    zfs.nodes["rpool/config"].files = {"/appliance.conf": "name=factory"}
    seal(
        zfs,
        config,
        "rpool",
        journal,
        environment="rpool/ROOT/beta",
        release="r1",
        kernel="6.1.0-30-amd64",
        clock=lambda: NOW - 1000,
    )
    # what the customer changed since
    zfs.nodes["rpool/config"].files = {"/appliance.conf": "name=customised"}
    zfs.add_snap("rpool/config@tuesday")
    return zfs


def make_target(zfs: FakeZfs, grubenv: GrubenvFile, journal: Journal, base: Path) -> ResetTarget:
    return ResetTarget(
        zfs=zfs,
        boot=BootStore(zfs, grubenv, mounts_path=str(base / "no-mounts")),
        journal=journal,
        state_directory=str(base / "state"),
        clock=lambda: NOW,
    )


@pytest.fixture
def target(sealed: FakeZfs, grubenv: GrubenvFile, journal: Journal, tmp_path: Path) -> ResetTarget:
    return make_target(sealed, grubenv, journal, tmp_path)


def with_reset(config: Config, **changes: object) -> Config:
    return replace(config, reset=replace(config.reset, **changes))  # type: ignore[arg-type]
