"""Wiring for the command line: config, pool, ZFS backend, journal and boot store, built once per run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bootagent.bootmenu import BootMenu, NoMenu
from bootagent.bootstate import BootStore
from bootagent.config import Config
from bootagent.environments import BootEnvironments
from bootagent.errors import NotFoundError, UsageError
from bootagent.grubenv import GrubenvFile
from bootagent.journal import Journal
from bootagent.model import Actor
from bootagent.recovery.lifecycle import RunningSystem
from bootagent.recovery.store import RecoveryStore
from bootagent.runner import Runner, run
from bootagent.transfer.side import ProcessStreams, Streams
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)

FALLBACK_STATE_DIR = "/run/bootagent"


def running_system(ctx: Context) -> RunningSystem:
    """Boot counting, health and bless on this system, with the real runner and watchdog."""
    return RunningSystem(
        config=ctx.config,
        pool=ctx.pool,
        envs=ctx.envs,
        boot=ctx.envs.boot,
        journal=ctx.journal,
        store=RecoveryStore(ctx.journal.directory),
        runner=run,
    )


@dataclass(frozen=True)
class Context:
    config: Config
    pool: str
    zfs: ZfsBackend
    journal: Journal
    envs: BootEnvironments
    menu: BootMenu
    recovery: Callable[[Context], RunningSystem] = running_system
    runner: Runner = run  # every external command of the verbs
    streams: Streams = field(default_factory=ProcessStreams)  # zfs send/receive as byte streams


def detect_pool(zfs: ZfsBackend, config: Config, explicit: str | None) -> str:
    """--pool, else the config's pool, else the pool holding the running root."""
    if explicit:
        return explicit
    if config.pool:
        return config.pool
    root_ds = zfs.mounts().get("/")
    if root_ds:
        return root_ds.split("/", 1)[0].split("@", 1)[0]
    raise UsageError(
        "cannot tell which pool to use: the running root is not on ZFS and the config says 'pool: auto'",
        hint="pass --pool NAME or set 'pool:' in the config",
    )


def state_directory(zfs: ZfsBackend, config: Config, pool: str) -> str:
    """Where the journal lives: the mount point of the persistent state dataset."""
    state = config.state_dataset(pool)
    for path, dataset in zfs.mounts().items():
        if dataset == state:
            return path
    LOG.warning(
        "the state dataset %s is not mounted; the journal goes to %s for now", state, FALLBACK_STATE_DIR
    )
    return FALLBACK_STATE_DIR


def build_context(
    config: Config,
    zfs: ZfsBackend,
    *,
    pool: str | None,
    actor: Actor = Actor.CLI,
    menu: BootMenu | None = None,
) -> Context:
    name = detect_pool(zfs, config, pool)
    zfs.pool_info(name)  # fails early, with a hint, when the pool is not imported
    if not zfs.exists(config.root_container(name)):
        raise NotFoundError(
            f"pool {name!r} has no boot environment container {config.root_container(name)}",
            hint="check 'layout: root:' in the config, or pass --pool",
        )
    journal = Journal(
        Path(state_directory(zfs, config, name)), actor=actor, max_entries=config.journal.max_entries
    )
    boot = BootStore(zfs, GrubenvFile(config.grubenv))
    envs = BootEnvironments(zfs, config, name, journal, boot)
    return Context(config=config, pool=name, zfs=zfs, journal=journal, envs=envs, menu=menu or NoMenu())
