"""A reset from start to end over the real interfaces: gather the facts, plan, begin, carry out, resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bootagent.config import Config
from bootagent.environments import unique_name
from bootagent.errors import RefusedError
from bootagent.pairs import layout_for
from bootagent.reset.baseline import baselines, choose
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import Kind, PlanInput, ResetPlan, classify, make_plan
from bootagent.reset.run import ResetTarget, begin, carry_out
from bootagent.reset.store import ResetStore
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


def refuse_pairs(zfs: ZfsBackend, config: Config, pool: str) -> None:
    """A baseline is a copy of the root half only: on two pools (bootagent.pairs) a reset to it would make an
    environment without its /boot half, which nothing boots. Refused until baselines carry both halves."""
    warnings: list[str] = []
    layout = layout_for(zfs, config, pool, warnings)
    if layout.boot is not None:
        raise RefusedError(
            f"factory baselines of two-pool environments (/boot in {layout.boot}) are not supported yet: "
            "a baseline would copy the root half only",
            hint="nothing was changed; roll back or activate an environment instead",
        )


def prepare(
    zfs: ZfsBackend,
    config: Config,
    pool: str,
    mode: ResetMode,
    *,
    release: str | None = None,
    actor: str = "agent",
    secure: bool = False,
    reason: str = "",
    clock: Callable[[], float] = time.time,
) -> ResetPlan:
    """The plan of a reset of `pool` now (nothing is changed)."""
    refuse_pairs(zfs, config, pool)
    baseline = choose(baselines(zfs, config, pool), release)
    tree = zfs.list_tree(pool)
    classified = classify(tree, config, pool)
    wanted = [n for n, k in classified.kinds.items() if k in (Kind.CONFIG, Kind.CUSTOMER, Kind.UNCLASSIFIED)]
    props = {name: zfs.properties(name) for name in wanted}
    now = int(clock())
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
    existing = [n.rsplit("/", 1)[-1] for n in classified.environments]
    name = unique_name(f"factory-{baseline.release}-{stamp}", existing)
    return make_plan(
        config,
        PlanInput(
            mode=mode,
            pool=pool,
            tree=tree,
            props=props,
            baseline=baseline,
            new_environment=name,
            now=now,
            actor=actor,
            secure=secure,
            reason=reason,
        ),
    )


def start(target: ResetTarget, plan: ResetPlan) -> ResetPlan:
    """Begin a new reset (refused while another is under way) and carry it out."""
    under_way = target.store.plan()
    if under_way is not None:
        raise RefusedError(
            f"a factory reset ({under_way.mode.value}) is under way already; it is finished first",
            hint="reboot: the agent carries it on",
        )
    return carry_out(target, begin(target, plan))


def resume(target: ResetTarget) -> ResetPlan | None:
    """Carry on the reset a power cut interrupted, if there is one."""
    plan = ResetStore(target.state_directory).plan()
    if plan is None:
        return None
    target.progress(
        f"a factory reset ({plan.mode.value}) was interrupted after step {plan.done} of {len(plan.steps)}: "
        "carrying it on"
    )
    return carry_out(target, plan)
