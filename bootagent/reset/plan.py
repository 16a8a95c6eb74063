"""The plan of a factory reset, worked out before anything changes: pure, from the pool's datasets.

Every dataset of the pool is put in exactly one class, and each mode says what happens to each class:

- environment: <pool>/<root>/<name> and below. keep-data: kept (or removed, reset.keep_environments:
  false); erase-all: destroyed.
- config: layout.config_datasets. Both modes: back to the baseline's copy.
- customer: customer_datasets, org.bootagent:customer=on, and below them. keep-data: untouched, snapshots
  too; erase-all: destroyed and re-created empty with their recorded properties.
- state (layout.state_dataset: the journal, the reset counter) and factory (<pool>/<factory>): untouched.
- container: the pool's root, <root>, and canmount=off parents of the above: untouched.
- unclassified: anything else: listed, untouched (erase-all destroys it only with reset.erase_unclassified).

Only datasets positively identified as environments or customer data are ever destroyed; an encrypted
customer dataset is destroyed first of all (its keys go with it, so an erase cut short already leaves its
data unreadable). The steps are listed in the order they run; each can be repeated (bootagent.reset.run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bootagent.config import Config
from bootagent.errors import RefusedError
from bootagent.model import DatasetInfo, DatasetKind, Prop
from bootagent.reset.baseline import Baseline
from bootagent.reset.mode import ResetMode

PLAN_VERSION = 1
# properties that describe a dataset but cannot be given to `zfs create` / `zfs clone`
_NOT_SETTABLE = frozenset({"guid", "type", "encryptionroot", "keystatus", "origin"})


class Kind(StrEnum):
    ENVIRONMENT = "environment"
    CONFIG = "config"
    CUSTOMER = "customer"
    STATE = "state"
    FACTORY = "factory"
    CONTAINER = "container"
    UNCLASSIFIED = "unclassified"


class StepKind(StrEnum):
    CRYPTO_ERASE = "crypto-erase"  # destroy the encrypted customer datasets, keys and all
    CLONE = "clone-baseline"  # the new environment, from the baseline's system snapshot
    SET_DEFAULT = "set-default"  # the new environment boots from now on (grubenv and bootfs)
    REMOVE_ENVIRONMENTS = "remove-environments"
    RESTORE_CONFIG = "restore-config"  # each config dataset becomes a clone of its sealed copy
    DESTROY_CUSTOMER = "destroy-customer"
    CREATE_CUSTOMER = "create-customer"  # empty, with the recorded properties
    DESTROY_UNCLASSIFIED = "destroy-unclassified"
    WIPE_FREE_SPACE = "wipe-free-space"  # --secure: zpool initialize, then trim
    FINISH = "finish"  # the counter, the journal, and the request cleared last


@dataclass(frozen=True)
class Recorded:
    """A dataset as it was when the plan was made: enough to recognise it (guid) and to make it again."""

    name: str
    guid: str
    props: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def encrypted(self) -> bool:
        return self.props.get("encryption", "off") not in ("off", "", "-")

    def create_props(self) -> dict[str, str]:
        """What `zfs create` is given to make it again (without the key settings, added by the caller)."""
        out = {k: v for k, v in self.props.items() if k not in _NOT_SETTABLE}
        for key in ("encryption", "keyformat", "keylocation", "pbkdf2iters"):
            out.pop(key, None)
        if self.encrypted:
            out["encryption"] = self.props.get("encryption", "on")
        return out


@dataclass(frozen=True)
class Item:
    """One line of the confirmation screen: a dataset, its class, its size and what the reset does to it."""

    name: str
    kind: Kind
    used: int
    fate: str


@dataclass(frozen=True)
class ResetPlan:
    mode: ResetMode
    pool: str
    baseline: str  # the release
    system_snapshot: str
    new_environment: str
    new_dataset: str
    kernel: str | None
    environments: tuple[str, ...]  # datasets (and all below them) to remove, dependants first
    configs: tuple[tuple[Recorded, str], ...]  # (the config dataset as it was, its sealed copy's snapshot)
    customers: tuple[Recorded, ...]  # parents first
    unclassified: tuple[Recorded, ...]  # destroyed only when erase_unclassified
    erase_unclassified: bool
    secure: bool
    state_mountpoint: str  # where the state dataset mounts in the booted system (the new keys' place)
    steps: tuple[StepKind, ...]
    items: tuple[Item, ...]
    created: int
    actor: str
    reason: str = ""
    op: str = ""  # the journal operation of the whole reset (its intent is written when it starts)
    done: int = 0  # the steps finished so far (the next one to run)

    @property
    def complete(self) -> bool:
        return self.done >= len(self.steps)

    def advanced(self) -> ResetPlan:
        return replace(self, done=self.done + 1)

    def to_json(self) -> str:
        raw: dict[str, Any] = {
            "version": PLAN_VERSION,
            "mode": self.mode.value,
            "pool": self.pool,
            "baseline": self.baseline,
            "system_snapshot": self.system_snapshot,
            "new_environment": self.new_environment,
            "new_dataset": self.new_dataset,
            "kernel": self.kernel,
            "environments": list(self.environments),
            "configs": [[_rec(r), snap] for r, snap in self.configs],
            "customers": [_rec(r) for r in self.customers],
            "unclassified": [_rec(r) for r in self.unclassified],
            "erase_unclassified": self.erase_unclassified,
            "secure": self.secure,
            "state_mountpoint": self.state_mountpoint,
            "steps": [s.value for s in self.steps],
            "items": [[i.name, i.kind.value, i.used, i.fate] for i in self.items],
            "created": self.created,
            "actor": self.actor,
            "reason": self.reason,
            "op": self.op,
            "done": self.done,
        }
        return json.dumps(raw, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ResetPlan:
        """ValueError for anything that is not a whole plan of this version."""
        try:
            raw = json.loads(text)
            if raw.get("version") != PLAN_VERSION:
                raise ValueError(f"plan version {raw.get('version')!r}, not {PLAN_VERSION}")
            return cls(
                mode=ResetMode(raw["mode"]),
                pool=str(raw["pool"]),
                baseline=str(raw["baseline"]),
                system_snapshot=str(raw["system_snapshot"]),
                new_environment=str(raw["new_environment"]),
                new_dataset=str(raw["new_dataset"]),
                kernel=raw["kernel"] if isinstance(raw["kernel"], str) else None,
                environments=tuple(str(e) for e in raw["environments"]),
                configs=tuple((_unrec(r), str(snap)) for r, snap in raw["configs"]),
                customers=tuple(_unrec(r) for r in raw["customers"]),
                unclassified=tuple(_unrec(r) for r in raw["unclassified"]),
                erase_unclassified=bool(raw["erase_unclassified"]),
                secure=bool(raw["secure"]),
                state_mountpoint=str(raw["state_mountpoint"]),
                steps=tuple(StepKind(s) for s in raw["steps"]),
                items=tuple(Item(str(n), Kind(k), int(u), str(f)) for n, k, u, f in raw["items"]),
                created=int(raw["created"]),
                actor=str(raw["actor"]),
                reason=str(raw.get("reason", "")),
                op=str(raw.get("op", "")),
                done=int(raw["done"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a reset plan ({type(exc).__name__}: {exc})") from None


def _rec(r: Recorded) -> dict[str, Any]:
    return {"name": r.name, "guid": r.guid, "props": dict(r.props)}


def _unrec(raw: Any) -> Recorded:
    props = raw["props"]
    if not isinstance(props, dict):
        raise TypeError("props is not a mapping")
    return Recorded(str(raw["name"]), str(raw["guid"]), {str(k): str(v) for k, v in props.items()})


# --- classifying -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Classified:
    kinds: Mapping[str, Kind]  # every file system of the pool
    environments: tuple[str, ...]  # the top datasets of the environments
    customers: tuple[str, ...]  # every customer dataset, parents first
    missing_customers: tuple[str, ...]  # configured but not in the pool


def _below(name: str, tops: Sequence[str]) -> str | None:
    return next((t for t in tops if name == t or name.startswith(t + "/")), None)


def classify(tree: Sequence[DatasetInfo], config: Config, pool: str) -> Classified:
    filesystems = sorted((d for d in tree if d.kind is DatasetKind.FILESYSTEM), key=lambda d: d.name)
    names = [d.name for d in filesystems]
    root = config.root_container(pool)
    factory = f"{pool}/{config.layout.factory}"
    state = config.state_dataset(pool)
    configs = config.config_dataset_names(pool)
    marked = [d.name for d in filesystems if d.user_props.get(Prop.CUSTOMER.value) == "on"]
    configured = config.customer_dataset_names(pool)
    customer_tops = sorted({*marked, *(c for c in configured if c in names)})
    kinds: dict[str, Kind] = {}
    for info in filesystems:
        name = info.name
        if name.startswith(root + "/"):
            kinds[name] = Kind.ENVIRONMENT
        elif _below(name, [factory]):
            kinds[name] = Kind.FACTORY
        elif _below(name, [state]):
            kinds[name] = Kind.STATE
        elif name in configs:
            kinds[name] = Kind.CONFIG
        elif _below(name, customer_tops):
            kinds[name] = Kind.CUSTOMER
    for info in filesystems:  # parents that only hold others: the pool, <root>, canmount=off containers
        name = info.name
        if name in kinds:
            continue
        holds_known = any(n.startswith(name + "/") for n in kinds)
        if name in (pool, root) or (holds_known and info.canmount == "off"):
            kinds[name] = Kind.CONTAINER
        else:
            kinds[name] = Kind.UNCLASSIFIED
    envs = tuple(n for n in names if n.startswith(root + "/") and "/" not in n[len(root) + 1 :])
    customers = tuple(n for n in names if kinds.get(n) is Kind.CUSTOMER)
    return Classified(
        kinds=kinds,
        environments=envs,
        customers=customers,
        missing_customers=tuple(c for c in configured if c not in names),
    )


def removal_order(tree: Sequence[DatasetInfo], environments: Sequence[str]) -> tuple[str, ...]:
    """The environments, each after every environment cloned from one of its snapshots."""
    origin_of = {d.name: (d.origin or "").split("@", 1)[0] for d in tree if d.kind is DatasetKind.FILESYSTEM}
    todo = list(environments)
    out: list[str] = []
    while todo:
        ready = [e for e in todo if not any(_made_from(origin_of.get(o, ""), e) for o in todo if o != e)]
        if not ready:  # a loop cannot happen in ZFS; keep going rather than spin
            ready = todo[:1]
        out.extend(ready)
        todo = [e for e in todo if e not in ready]
    return tuple(out)


def _made_from(origin: str, environment: str) -> bool:
    return origin == environment or origin.startswith(environment + "/")


# --- planning --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanInput:
    mode: ResetMode
    pool: str
    tree: Sequence[DatasetInfo]  # every file system and snapshot of the pool
    props: Mapping[str, Mapping[str, str]]  # ZfsBackend.properties of config, customer, unclassified datasets
    baseline: Baseline
    new_environment: str
    now: int
    actor: str
    secure: bool = False
    reason: str = ""


def make_plan(config: Config, data: PlanInput) -> ResetPlan:
    pool = data.pool
    classified = classify(data.tree, config, pool)
    used = {d.name: d.used for d in data.tree}
    erase = data.mode is ResetMode.ERASE_ALL
    new_dataset = f"{config.root_container(pool)}/{data.new_environment}"
    if new_dataset in used:
        raise RefusedError(f"{new_dataset} exists already; the reset needs a new name for its environment")
    for dataset in config.config_dataset_names(pool):
        children = [n for n in classified.kinds if n.startswith(dataset + "/")]
        if children:
            raise RefusedError(
                f"the config dataset {dataset} has datasets inside it ({', '.join(children)}); a reset "
                "restores a config dataset as a whole and would destroy them",
                hint="list them in layout.config_datasets, or move them elsewhere; nothing was changed",
            )

    def record(name: str) -> Recorded:
        props = data.props.get(name, {})
        return Recorded(name, props.get("guid", ""), dict(props))

    configs: list[tuple[Recorded, str]] = []
    for dataset in config.config_dataset_names(pool):
        copy = data.baseline.config_snapshot(dataset)
        if dataset in used and copy is None:
            raise RefusedError(
                f"the factory baseline {data.baseline.release} has no copy of the config dataset {dataset}",
                hint="seal a baseline that has it ('bootagent factory seal'), or choose another baseline",
            )
        if copy is not None:
            configs.append((record(dataset) if dataset in used else Recorded(dataset, ""), copy))
    removing = erase or not config.reset.keep_environments
    environments = removal_order(data.tree, classified.environments) if removing else ()
    customers = tuple(record(n) for n in classified.customers) if erase else ()
    unclassified_names = [n for n, k in classified.kinds.items() if k is Kind.UNCLASSIFIED]
    wipe_unclassified = erase and config.reset.erase_unclassified
    unclassified = tuple(record(n) for n in unclassified_names) if wipe_unclassified else ()

    steps: list[StepKind] = []
    if erase and any(c.encrypted for c in customers):
        steps.append(StepKind.CRYPTO_ERASE)
    steps += [StepKind.CLONE, StepKind.SET_DEFAULT]
    if environments:
        steps.append(StepKind.REMOVE_ENVIRONMENTS)
    if configs:
        steps.append(StepKind.RESTORE_CONFIG)
    if customers:
        steps += [StepKind.DESTROY_CUSTOMER, StepKind.CREATE_CUSTOMER]
    if unclassified:
        steps.append(StepKind.DESTROY_UNCLASSIFIED)
    if data.secure:
        steps.append(StepKind.WIPE_FREE_SPACE)
    steps.append(StepKind.FINISH)

    items: list[Item] = [
        Item(
            new_dataset,
            Kind.ENVIRONMENT,
            data.baseline.size,
            f"new: from factory baseline {data.baseline.release}",
        )
    ]
    for name, kind in sorted(classified.kinds.items()):
        fate = _fate(
            kind,
            name,
            erase=erase,
            removing=removing,
            wipe_unclassified=wipe_unclassified,
            encrypted=record(name).encrypted,
        )
        items.append(Item(name, kind, used.get(name, 0), fate))
    for name in classified.missing_customers:
        items.append(Item(name, Kind.CUSTOMER, 0, "configured, but does not exist"))
    state_info = next((d for d in data.tree if d.name == config.state_dataset(pool)), None)
    state_mountpoint = state_info.mountpoint if state_info and state_info.mountpoint else "/var/lib/bootagent"
    return ResetPlan(
        mode=data.mode,
        pool=pool,
        baseline=data.baseline.release,
        system_snapshot=data.baseline.system,
        new_environment=data.new_environment,
        new_dataset=new_dataset,
        kernel=data.baseline.kernel,
        environments=environments,
        configs=tuple(configs),
        customers=customers,
        unclassified=unclassified,
        erase_unclassified=wipe_unclassified,
        secure=data.secure,
        state_mountpoint=state_mountpoint,
        steps=tuple(steps),
        items=tuple(items),
        created=data.now,
        actor=data.actor,
        reason=data.reason,
    )


def _fate(
    kind: Kind, name: str, *, erase: bool, removing: bool, wipe_unclassified: bool, encrypted: bool
) -> str:
    if kind is Kind.ENVIRONMENT:
        return "destroyed, with its snapshots" if removing else "kept"
    if kind is Kind.CONFIG:
        return "back to factory (its snapshots go)"
    if kind is Kind.CUSTOMER:
        if not erase:
            return "kept, untouched (and its snapshots)"
        if encrypted:
            return "crypto-erased first (keys destroyed), then re-created empty with a new key"
        return "destroyed with its snapshots, re-created empty"
    if kind is Kind.UNCLASSIFIED:
        return "destroyed (reset.erase_unclassified)" if wipe_unclassified else "left alone (not identified)"
    return "kept"


def key_file(state_directory: str, dataset: str) -> str:
    """Where the key of a re-created encrypted customer dataset is kept, below the state dataset."""
    return f"{state_directory.rstrip('/')}/keys/{dataset.replace('/', '_')}.key"


def summary(plan: ResetPlan) -> list[str]:
    """What the reset keeps and erases, in lines for a screen or a terminal, with sizes."""
    width = max((len(i.name) for i in plan.items), default=10)
    lines = []
    for item in plan.items:
        lines.append(f"{item.name:<{width}}  {item.kind.value:<12} {_size(item.used):>8}  {item.fate}")
    return lines


def effect(item: Item) -> str:
    """A word for what happens to it: ERASE, RESTORE, NEW or KEEP."""
    if item.fate.startswith(("destroyed", "crypto-erased")):
        return "ERASE"
    if item.fate.startswith("back to factory"):
        return "RESTORE"
    if item.fate.startswith("new"):
        return "NEW"
    return "KEEP"


_ORDER = {"ERASE": 0, "RESTORE": 1, "NEW": 2, "KEEP": 3}


def screen_lines(plan: ResetPlan) -> list[str]:
    """One short line per dataset, what is erased first (a small screen shortens the end of the list)."""
    items = sorted(plan.items, key=lambda i: (_ORDER[effect(i)], i.name))
    return [f"{effect(i):<7} {i.name} ({_size(i.used)}, {i.kind.value}): {i.fate}" for i in items]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"
