"""`bootagent grub-menu`: bootagent's entries for grub.cfg, as /etc/grub.d/42_bootagent prints them.

The I/O around bootagent.grub.menu: the settings grub-mkconfig exports from /etc/default/grub, the config
(read leniently: a bad config file is warned about and the defaults are used, because update-grub must not
fail over it), the pool and its environments, and where GRUB finds the writable grubenv. Warnings go to
stderr, where update-grub shows them. When there is nothing to offer (no pool, no bootable environment),
nothing is printed: 42_bootagent then keeps GRUB's ordinary entries (10_linux) so the machine still boots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from bootagent.config import Config
from bootagent.errors import BootagentError, CommandError
from bootagent.grub.counting import Counting
from bootagent.grub.menu import (
    BootPool,
    GrubenvPlace,
    GrubSettings,
    Menu,
    MenuInput,
    Protection,
    build,
    render,
)
from bootagent.inventory import assemble
from bootagent.model import BootEnvironment, last_known_good
from bootagent.names import shown
from bootagent.pairs import PairLayout, layout_for, pair_up
from bootagent.runner import Runner, run
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MenuSources:
    """What the generator reads from the system."""

    zfs: ZfsBackend
    runner: Runner = run
    environ: Mapping[str, str] | None = None  # default: os.environ


def detect_pool(zfs: ZfsBackend, config: Config, warnings: list[str]) -> str | None:
    """The config's pool; else the pool of the running root; else the one imported pool that has the
    environments' container."""
    if config.pool:
        return config.pool
    root = zfs.mounts().get("/")
    if root:
        return root.split("/", 1)[0].split("@", 1)[0]
    try:
        pools = zfs.imported_pools()
    except BootagentError as exc:
        warnings.append(f"cannot list the imported pools: {exc.message}")
        return None
    candidates = [p for p in pools if zfs.exists(config.root_container(p))]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        warnings.append(
            f"several pools have boot environments ({', '.join(candidates)}) and the root is not on ZFS: "
            "set 'pool:' in /etc/bootagent/bootagent.yaml"
        )
    else:
        warnings.append(
            "the running root is not on ZFS and no imported pool has "
            f"<pool>/{config.layout.root}: set 'pool:' in /etc/bootagent/bootagent.yaml"
        )
    return None


def grubenv_place(grubenv: str, runner: Runner, warnings: list[str]) -> GrubenvPlace:
    """How GRUB reaches the file the command line writes: the UUID of its file system and its path there
    (grub-probe and grub-mkrelpath, the tools grub-mkconfig uses); GRUB's $prefix when they cannot say."""
    directory = os.path.dirname(grubenv) or "/"
    try:
        uuid = runner(["grub-probe", "--target=fs_uuid", directory], timeout=60).stdout.strip()
        relative = runner(["grub-mkrelpath", directory], timeout=60).stdout.strip()
    except CommandError as exc:
        warnings.append(
            f"cannot tell where GRUB finds {grubenv} ({exc.message}); using GRUB's $prefix/grubenv"
        )
        return GrubenvPlace()
    name = os.path.basename(grubenv)
    relative = relative or "/"  # grub-mkrelpath prints nothing for the root of a file system
    if not uuid or not relative.startswith("/"):
        warnings.append(f"grub-probe gave no file system UUID for {directory}; using GRUB's $prefix/grubenv")
        return GrubenvPlace()
    return GrubenvPlace(uuid=uuid, path=relative.rstrip("/") + "/" + name)


# What grub-mkconfig reads (sourcing them as shell) before it runs the grub.d scripts
DEFAULTS_FILES = ("/etc/default/grub", "/etc/default/grub.d/*.cfg")
_SOURCE_DEFAULTS = (
    "set -a; for f in " + " ".join(DEFAULTS_FILES) + '; do if [ -e "$f" ]; then . "$f"; fi; done; env -0'
)


def grub_defaults(environ: Mapping[str, str], runner: Runner, warnings: list[str]) -> dict[str, str]:
    """The GRUB_* settings: as grub-mkconfig exports them when it runs us (it sets GRUB_DEVICE), else read
    the way grub-mkconfig reads them -- /etc/default/grub sourced by the shell -- so that running
    `bootagent grub-menu` by hand shows what update-grub would write."""
    if "GRUB_DEVICE" in environ:
        return dict(environ)
    try:
        out = runner(["sh", "-c", _SOURCE_DEFAULTS], timeout=60).stdout
    except CommandError as exc:
        warnings.append(f"cannot read /etc/default/grub ({exc.message}); using GRUB's defaults")
        return dict(environ)
    found = dict(environ)
    for item in out.split("\0"):
        key, sep, value = item.partition("=")
        if sep and key.startswith("GRUB_"):
            found[key] = value
    return found


def menu_input(config: Config, sources: MenuSources, warnings: list[str]) -> MenuInput | None:
    environ = grub_defaults(
        os.environ if sources.environ is None else sources.environ, sources.runner, warnings
    )
    settings, notes = GrubSettings.from_environ(environ)
    warnings.extend(notes)
    zfs = sources.zfs
    pool = detect_pool(zfs, config, warnings)
    if pool is None:
        return None
    container = config.root_container(pool)
    try:
        info = zfs.pool_info(pool)
        tree = zfs.list_tree(container)
    except BootagentError as exc:
        warnings.append(f"cannot list the boot environments of {pool}: {exc.message}")
        return None
    environments = assemble(container, tree)
    layout = layout_for(zfs, config, pool, warnings)
    boot = None
    if layout.boot is not None:
        found = _boot_pool(zfs, layout, environments, warnings)
        if found is None:
            return None
        environments, boot = found
    fallback = None
    if info.bootfs and info.bootfs.startswith(container + "/"):
        fallback = info.bootfs[len(container) + 1 :]
    elif info.bootfs:
        warnings.append(f"the pool's bootfs {shown(info.bootfs)} is not a boot environment under {container}")
    return MenuInput(
        pool=pool,
        root=config.layout.root,
        environments=tuple(e.name for e in environments),
        fallback=fallback,
        pool_uuid=_pool_uuid(zfs, pool, warnings),
        grubenv=grubenv_place(config.grubenv, sources.runner, warnings),
        settings=settings,
        counting=Counting(limit=config.recovery.boot_count_limit, panic=config.recovery.panic_reboot),
        protection=(
            Protection(config.protection.user, config.protection.password_pbkdf2)
            if config.protection.grub_protected
            else None
        ),
        boot=boot,
        entry_limit=config.grub_entries,
        always=tuple(n for n in (last_known_good(environments),) if n),
    )


def _boot_pool(
    zfs: ZfsBackend, layout: PairLayout, environments: list[BootEnvironment], warnings: list[str]
) -> tuple[list[BootEnvironment], BootPool] | None:
    """With a boot pool: the environments whose pair is whole (the others are warned about), and where GRUB
    finds the /boot halves. None (no entries at all) when the boot pool cannot be read."""
    assert layout.boot is not None
    pool, _, root = layout.boot.partition("/")
    try:
        boot_tree = zfs.list_tree(layout.boot)
    except BootagentError as exc:
        warnings.append(f"cannot list the /boot halves in {layout.boot}: {exc.message}")
        return None
    paired = pair_up(layout, environments, boot_tree)
    whole = []
    for env in paired.environments:
        if env.missing_half:
            warnings.append(f"boot environment {shown(env.name)} gets no GRUB entry: {env.missing_half}")
        else:
            whole.append(env)
    return whole, BootPool(pool, root, _pool_uuid(zfs, pool, warnings))


def _pool_uuid(zfs: ZfsBackend, pool: str, warnings: list[str]) -> str | None:
    """GRUB's fs_uuid of a pool (its guid in hex); None, with a warning, when it cannot be read."""
    try:
        return f"{zfs.pool_guid(pool):016x}"
    except BootagentError as exc:
        warnings.append(f"cannot read the guid of {pool} ({exc.message}); GRUB finds it by its name")
        return None


def generate(config: Config, sources: MenuSources, problems: Sequence[str] = ()) -> Menu:
    warnings = list(problems)
    data = menu_input(config, sources, warnings)
    if data is None:
        return Menu(None, (), (*warnings, "bootagent adds no entries; GRUB's ordinary entries are kept"))
    return build(data, warnings)


def write(menu: Menu, out: TextIO, err: TextIO) -> None:
    for warning in menu.warnings:
        err.write(f"bootagent grub-menu: warning: {warning}\n")
    out.write(render(menu))
    out.flush()
