"""What `bootagent setup` proposes for a system it reads (pure).

It works out the layout -- one pool with /boot inside each environment, or the OpenZFS HOWTO's boot pool
beside the root pool (bootagent.pairs) -- where GRUB can write its environment block (ext4, or FAT: the
ESP; never ZFS), whether the state dataset exists, and which datasets look like customer data. Customer
data is only ever proposed, never decided: it is listed, and the config is
left to the administrator. A layout bootagent cannot
serve is refused with the reason, and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bootagent.config import BOOT_POOL_AUTO, BOOT_POOL_NONE, Config
from bootagent.setup.facts import SystemFacts

GRUB_WRITABLE = ("ext4", "ext3", "ext2", "vfat")  # what GRUB's save_env can write (never ZFS)
ESP = "/boot/efi"
CUSTOMER_PLACES = ("/home", "/srv", "/data", "/var/lib/appdata")
STATE_MOUNTPOINT = "/var/lib/bootagent"


@dataclass(frozen=True)
class Setting:
    key: str  # dotted: "boot_pool", "layout.root"
    value: str  # YAML text
    why: str


@dataclass(frozen=True)
class Proposal:
    pool: str | None
    environment: str | None
    boot_pool: str | None
    grubenv: str | None
    settings: tuple[Setting, ...]
    state_dataset: str | None  # to be created (None: it exists)
    grubenv_missing: bool  # the grubenv file is to be created
    customer_candidates: tuple[str, ...]  # proposed in a comment, never set
    notes: tuple[str, ...]
    refusals: tuple[str, ...]

    @property
    def changes_nothing(self) -> bool:
        return not self.settings and self.state_dataset is None and not self.grubenv_missing


def _refused(notes: list[str], refusals: list[str]) -> Proposal:
    return Proposal(None, None, None, None, (), None, False, (), tuple(notes), tuple(refusals))


def propose(
    facts: SystemFacts, config: Config, *, exists: Callable[[str], bool] = lambda _path: True
) -> Proposal:
    """`exists` tells whether a file is there (the grubenv)."""
    notes: list[str] = []
    refusals: list[str] = []
    settings: list[Setting] = []
    root = facts.mounted_at("/")
    if root is None or root.fstype != "zfs":
        what = f"{root.fstype} on {root.source}" if root else "unknown"
        return _refused(notes, [f"the root file system is not on ZFS ({what}): there is nothing to manage"])
    pool, _, rest = root.source.partition("/")
    container, _, name = rest.rpartition("/")
    if not container or "@" in root.source:
        return _refused(
            notes,
            [
                f"the root dataset {root.source} is not <pool>/<container>/<name>: boot environments need a "
                "container of their own (the HOWTO's rpool/ROOT/debian)"
            ],
        )
    if config.pool not in (None, pool):
        settings.append(
            Setting("pool", pool, f"the running root is on {pool}, the config names {config.pool}")
        )
    if container != config.layout.root:
        settings.append(Setting("layout.root", container, f"the running root is {root.source}"))
    notes.append(f"the running environment is {name} ({root.source})")

    boot_pool = _boot(facts, config, pool, name, settings, notes, refusals)
    grubenv = _grubenv(facts, config, settings, notes, refusals)
    state = f"{pool}/{config.layout.state_dataset}"
    create_state = None if facts.dataset(state) is not None else state
    if create_state:
        notes.append(
            f"the state dataset {state} (journal, boot counters) is to be created at {STATE_MOUNTPOINT}"
        )
        root_ds = facts.dataset(pool)
        if root_ds is not None and root_ds.encryption != "off":
            notes.append(
                f"{state} inherits {pool}'s encryption: the early-boot agent reads it only once the key is "
                "loaded (until then its journal stays in memory)"
            )

    ds = facts.dataset(root.source)
    if ds is not None and ds.encryption != "off" and ds.encryptionroot:
        notes.append(
            f"the root is encrypted (encryption root {ds.encryptionroot}, key {ds.keyformat or 'unknown'}): "
            "clones and rollbacks keep that encryption root; the initramfs asks for the key as before"
        )
    candidates = _customer_candidates(facts, config, pool, container)
    if refusals:
        return _refused(notes, refusals)
    return Proposal(
        pool=pool,
        environment=name,
        boot_pool=boot_pool,
        grubenv=grubenv,
        settings=tuple(settings),
        state_dataset=create_state,
        grubenv_missing=grubenv is not None and not exists(grubenv),
        customer_candidates=candidates,
        notes=tuple(notes),
        refusals=(),
    )


def _boot(
    facts: SystemFacts,
    config: Config,
    pool: str,
    name: str,
    settings: list[Setting],
    notes: list[str],
    refusals: list[str],
) -> str | None:
    boot = facts.mounted_at("/boot")
    if boot is None:
        notes.append("/boot is inside each environment (one pool)")
        if config.boot_pool not in (BOOT_POOL_AUTO, BOOT_POOL_NONE):
            settings.append(
                Setting(
                    "boot_pool",
                    BOOT_POOL_AUTO,
                    f"the config names {config.boot_pool}, but /boot is not on it",
                )
            )
        return None
    if boot.fstype != "zfs":
        refusals.append(
            f"/boot is a file system of its own ({boot.fstype} on {boot.source}), shared by every "
            "environment: rolling back / would keep the newest kernels; bootagent needs /boot inside each "
            "environment or on a boot pool (bpool/BOOT/<name>, the OpenZFS HOWTO)"
        )
        return None
    boot_pool, _, rest = boot.source.partition("/")
    boot_root, _, boot_name = rest.rpartition("/")
    if boot_pool == pool or not boot_root:
        refusals.append(
            f"/boot is {boot.source}: bootagent knows /boot on a pool of its own, <pool>/BOOT/<name>"
        )
        return None
    if boot_name != name:
        refusals.append(
            f"/boot is {boot.source} but / is {pool}/.../{name}: the two halves of an environment must "
            f"have the same name (rename one: zfs rename {boot.source} {boot_pool}/{boot_root}/{name})"
        )
        return None
    if boot_root != config.layout.boot_root:
        settings.append(Setting("layout.boot_root", boot_root, f"/boot is {boot.source}"))
    if config.boot_pool != boot_pool:
        why = (
            f"/boot is {boot.source}: each environment is a pair, "
            f"{pool}/.../<name> + {boot_pool}/{boot_root}/<name>"
        )
        if config.boot_pool == BOOT_POOL_AUTO:
            why += " (named, so the early-boot agent imports it without guessing)"
        settings.append(Setting("boot_pool", boot_pool, why))
    notes.append(f"the boot pool is {boot_pool}: /boot of environment {name} is {boot.source}")
    return boot_pool


def _grubenv(
    facts: SystemFacts, config: Config, settings: list[Setting], notes: list[str], refusals: list[str]
) -> str | None:
    def writable(path: str) -> bool:
        holder = facts.holding(path.rsplit("/", 1)[0] or "/")
        return holder is not None and holder.fstype in GRUB_WRITABLE

    if writable(config.grubenv):
        holder = facts.holding(config.grubenv.rsplit("/", 1)[0])
        assert holder is not None
        notes.append(
            f"GRUB's writable environment block: {config.grubenv} ({holder.fstype} on {holder.source})"
        )
        return config.grubenv
    esp = facts.mounted_at(ESP)
    if esp is not None and esp.fstype == "vfat":
        path = f"{ESP}/grubenv"
        settings.append(
            Setting(
                "grubenv",
                path,
                f"{config.grubenv} is on ZFS, which GRUB cannot write; the ESP ({esp.source}) is FAT",
            )
        )
        return path
    refusals.append(
        f"GRUB can write its environment block only on ext4 or FAT, and {config.grubenv} is not on one; "
        "no ESP is mounted at /boot/efi either: mount the ESP (UEFI) or a small ext4 /boot/grub partition "
        "(BIOS), or set 'grubenv:' to a file on one"
    )
    return None


def _customer_candidates(facts: SystemFacts, config: Config, pool: str, container: str) -> tuple[str, ...]:
    known = {f"{pool}/{name}" for name in config.customer_datasets} | {
        d.name for d in facts.datasets if d.customer
    }
    skip = (
        f"{pool}/{container}",
        f"{pool}/{config.layout.factory}",
        f"{pool}/{config.layout.state_dataset}",
        *(f"{pool}/{c}" for c in config.layout.config_datasets),
    )
    out: list[str] = []
    for ds in facts.datasets:
        if ds.pool != pool:  # customer_datasets names datasets of the root pool
            continue
        if any(ds.name == k or ds.name.startswith(k + "/") for k in known):
            continue  # customer data already, or inside it
        if "/" not in ds.name or ds.canmount == "off":
            continue  # a pool's root, or a container (canmount=off holds no files)
        if any(ds.name == s or ds.name.startswith(s + "/") for s in skip):
            continue
        placed = any(ds.mountpoint == p or ds.mountpoint.startswith(p + "/") for p in CUSTOMER_PLACES)
        if placed and not any(
            ds.name.startswith(c + "/") for c in out
        ):  # the top one stands for its children
            out.append(ds.name)
    return tuple(out)
