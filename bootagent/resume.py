"""Operations cut short: each pending intent is finished or undone from what ZFS and grubenv show now.

Every change writes its intent to the journal before it starts, with what is needed to judge it later, and
its outcome after. A power cut in between leaves the intent pending. Before the next change (a command, or
the early-boot agent going read-write), `resolve_pending` looks at each pending intent, newest first (an
operation's inner steps were written after it), and closes it:

- checkpoint: the snapshot exists (resumed: it was made) or not (failed: nothing was made); of a pair
  (bootagent.pairs), a root half without its /boot half is removed again (rolled back): the /boot half taken
  now would be of another moment;
- create: the clone exists (resumed; its canmount/mountpoint are finished if the cut came before, and of a
  pair the /boot half is cloned if it is missing) or not;
- activate: the environment exists: grubenv and bootfs are set again, so they agree (resumed);
- activate-once: the next-boot choice is it (resumed) or not (failed: a trial is never re-armed by itself);
- rollback, roll-forward: the new environment exists and is complete: it is made the default (resumed);
  else nothing was made (failed);
- rollback-destroy-newer, destroy, prune: nothing left (resumed), all left (failed: nothing changed), some
  left: the rest is destroyed if the safety rules still allow it (resumed), else it stays (failed);
- keep, unkeep, mark-good, mark-failed: the property holds the value (resumed) or not (failed);
- bless: given up (failed): the boot it was about is over, and the next good boot is blessed instead.

A destructive step is finished only if the safety rules still allow it now; otherwise it stays as far as it
got and the outcome says so. An intent of an action this version does not know stays pending. Nothing here
raises for one intent: a step that cannot be finished now is reported and left pending for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bootagent.bootstate import BootStore
from bootagent.errors import BootagentError
from bootagent.journal import Journal, JournalEntry, Outcome
from bootagent.model import Prop
from bootagent.pairs import PairLayout
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumeContext:
    zfs: ZfsBackend
    boot: BootStore
    journal: Journal
    pool: str
    root: str  # "<pool>/<root>", the environments' container
    refusal: Callable[[str], str | None]  # why ENV or ENV@SNAP may not be destroyed now, or None
    boot_root: str | None = None  # "<boot pool>/<boot_root>" in a two-pool layout (bootagent.pairs)

    def boot_half(self, name: str) -> str | None:
        return PairLayout(self.root, self.boot_root).boot_half(name)


@dataclass(frozen=True)
class Resolution:
    intent: JournalEntry
    outcome: Outcome
    detail: str

    def describe(self) -> str:
        what = {Outcome.RESUMED: "finished", Outcome.ROLLED_BACK: "undone", Outcome.FAILED: "closed"}.get(
            self.outcome, self.outcome.value
        )
        return f"{self.intent.action} {self.intent.target} was cut short earlier; {what}: {self.detail}"


Verdict = tuple[Outcome, str]


def _dataset(ctx: ResumeContext, intent: JournalEntry, name: str) -> str:
    return intent.data.get("dataset") or f"{ctx.root}/{name}"


def _checkpoint(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    full = intent.data.get("snapshot") or f"{ctx.root}/{intent.target}"
    boot = intent.data.get("boot")
    if not ctx.zfs.exists(full):
        return Outcome.FAILED, "no snapshot was made; nothing changed"
    if boot and not ctx.zfs.exists(boot):
        ctx.zfs.destroy([full])
        return Outcome.ROLLED_BACK, f"its /boot half {boot} was never taken; {full} was removed again"
    return Outcome.RESUMED, f"the snapshot {full} had been made"


class _Unfinished(BootagentError):
    """A pair's root half whose /boot half cannot be made any more."""


def _settle(ctx: ResumeContext, dataset: str, mountpoint: str) -> bool:
    info = next((d for d in ctx.zfs.list_tree(dataset) if d.name == dataset), None)
    if info is not None and (info.canmount != "noauto" or info.mountpoint != mountpoint):
        ctx.zfs.set_native(dataset, {"canmount": "noauto", "mountpoint": mountpoint})
        return True
    return False


def _finish_clone(ctx: ResumeContext, dataset: str) -> str:
    notes = ["its mount settings were finished"] if _settle(ctx, dataset, "/") else []
    boot = ctx.boot_half(dataset)
    if boot is not None:
        info = next((d for d in ctx.zfs.list_tree(dataset) if d.name == dataset), None)
        origin = ctx.boot_half(info.origin) if info is not None and info.origin else None
        if not ctx.zfs.exists(boot):
            if origin is None or not ctx.zfs.exists(origin):
                raise _Unfinished(f"its /boot half {boot} cannot be cloned (no {origin or 'origin'})")
            ctx.zfs.clone(boot, origin, {})
            notes.append(f"its /boot half was cloned from {origin}")
        else:
            found = next((d for d in ctx.zfs.list_tree(boot) if d.name == boot), None)
            if found is not None and origin is not None and found.origin != origin:
                raise BootagentError(  # not ours to pair or to remove: it stays pending, and says why
                    f"{boot} exists but is not a clone of {origin}: it is not this environment's /boot half"
                )
        if _settle(ctx, boot, "/boot"):
            notes.append("its /boot half's mount settings were finished")
    return "; ".join(notes) or "it was complete"


def _create(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    dataset = _dataset(ctx, intent, intent.target)
    if not ctx.zfs.exists(dataset):
        return Outcome.FAILED, "no environment was made; nothing changed"
    try:
        return Outcome.RESUMED, f"{dataset} exists; {_finish_clone(ctx, dataset)}"
    except _Unfinished as exc:
        ctx.zfs.destroy([dataset])
        return Outcome.FAILED, f"{exc.message}: the half-made {dataset} was removed"


def _import(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    """An import is finished when its properties are set (the last step); anything less is removed."""
    dataset = intent.data.get("dataset", "")
    boot = intent.data.get("boot")
    if not dataset or not ctx.zfs.exists(dataset):
        if boot and ctx.zfs.exists(boot):
            ctx.zfs.destroy([boot])
            return Outcome.ROLLED_BACK, f"only the /boot half {boot} had been received; it was removed"
        return Outcome.FAILED, "nothing had been received; nothing changed"
    record = next((r for r in ctx.zfs.list_tree(dataset) if r.name == dataset), None)
    if record is not None and Prop.CREATED_BY.value in record.user_props:
        return Outcome.RESUMED, f"{dataset} had been imported whole"
    made = [d for d in (dataset, boot) if d and ctx.zfs.exists(d)]
    snaps = [r.name for d in made for r in ctx.zfs.list_tree(d) if "@" in r.name]
    ctx.zfs.destroy([*snaps, *made])
    return Outcome.ROLLED_BACK, f"the half-imported {' and '.join(made)} was removed; import it again"


def _activate(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    dataset = _dataset(ctx, intent, intent.target)
    if not ctx.zfs.exists(dataset):
        return Outcome.FAILED, f"{dataset} does not exist; the default was not changed"
    ctx.boot.set_default(ctx.pool, dataset, intent.target)
    return Outcome.RESUMED, f"{intent.target} is the default (grubenv and bootfs agree)"


def _activate_once(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    if ctx.boot.read().once == intent.target:
        return Outcome.RESUMED, f"{intent.target} is chosen for the next boot"
    return Outcome.FAILED, "the next-boot choice was not made (a trial boot is never re-armed by itself)"


def _new_environment(ctx: ResumeContext, intent: JournalEntry, key: str) -> Verdict:
    name = intent.data.get(key)
    if not name:
        return Outcome.FAILED, "the intent does not name the new environment; nothing is changed now"
    dataset = f"{ctx.root}/{name}"
    if not ctx.zfs.exists(dataset):
        return Outcome.FAILED, f"{name} was not made; the default was not changed"
    try:
        note = _finish_clone(ctx, dataset)
    except _Unfinished as exc:
        ctx.zfs.destroy([dataset])
        return Outcome.FAILED, f"{exc.message}: the half-made {name} was removed; the default was not changed"
    ctx.boot.set_default(ctx.pool, dataset, name)
    return Outcome.RESUMED, f"{name} exists ({note}) and is the default"


def _roll_forward(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    target = intent.data.get("to", "")
    if "@" not in target:  # forward to an existing environment: activating it is all there was
        dataset = f"{ctx.root}/{target}"
        if target and ctx.zfs.exists(dataset):
            ctx.boot.set_default(ctx.pool, dataset, target)
            return Outcome.RESUMED, f"{target} is the default"
        return Outcome.FAILED, "nothing was changed"
    return _new_environment(ctx, intent, "new")


def _destroyed(
    ctx: ResumeContext, intent: JournalEntry, names: Sequence[str], finish: Callable[[list[str]], None]
) -> Verdict:
    left = [n for n in names if ctx.zfs.exists(n)]
    if not left:
        return Outcome.RESUMED, "everything had been destroyed"
    if len(left) == len(names):
        return Outcome.FAILED, "nothing had been destroyed; nothing changed"
    refusals = [f"{t}: {why}" for t in _targets(ctx, left) if (why := ctx.refusal(t)) is not None]
    if refusals:
        return Outcome.FAILED, "partly done; the rest is protected now (" + "; ".join(refusals) + ")"
    finish(left)
    return Outcome.RESUMED, "destroyed the rest: " + ", ".join(left)


def _targets(ctx: ResumeContext, names: Sequence[str]) -> list[str]:
    prefix = ctx.root + "/"
    return [n[len(prefix) :] for n in names if n.startswith(prefix)]


def _destroy(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    names = intent.data.get("datasets", "").split()
    return _destroyed(ctx, intent, names, ctx.zfs.destroy)


def _rollback_in_place(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    env = intent.target
    target = intent.data.get("target", "")
    snaps = [f"{ctx.root}/{env}@{s}" for s in intent.data.get("destroys", "").split()]
    full = f"{ctx.root}/{target}"
    if not snaps or not ctx.zfs.exists(full):
        return Outcome.FAILED, "nothing to judge it by; nothing is changed now"

    boot = intent.data.get("boot")  # the target's /boot half, and the /boot halves the rollback destroys
    boot_snaps = intent.data.get("boot_destroys", "").split() if boot else []

    def finish(_left: list[str]) -> None:
        if ctx.zfs.exists(full) and any(ctx.zfs.exists(s) for s in snaps):
            ctx.zfs.rollback_destroying_newer(full)
        if boot and ctx.zfs.exists(boot) and any(ctx.zfs.exists(s) for s in boot_snaps):
            ctx.zfs.rollback_destroying_newer(boot)

    if all(ctx.zfs.exists(s) for s in [*snaps, *boot_snaps]):
        return Outcome.FAILED, "nothing had been destroyed; nothing changed"
    return _destroyed(ctx, intent, [*snaps, *boot_snaps], finish)


def _user_prop(ctx: ResumeContext, intent: JournalEntry, prop: Prop, want: str | None) -> Verdict:
    """Whether the property holds `want` (None: cleared); set_user and inherit_user are atomic."""
    name = intent.data.get("dataset") or f"{ctx.root}/{intent.target}"
    if not ctx.zfs.exists(name):
        return Outcome.FAILED, f"{name} does not exist"
    record = next((r for r in ctx.zfs.list_tree(name.partition("@")[0]) if r.name == name), None)
    value = record.user_props.get(prop.value) if record is not None else None
    if value == want:
        return Outcome.RESUMED, f"{prop.value} is {'cleared' if want is None else want}"
    return Outcome.FAILED, f"{prop.value} was not changed"


_RESOLVERS: dict[str, Callable[[ResumeContext, JournalEntry], Verdict]] = {
    "checkpoint": _checkpoint,
    "create": _create,
    "import": _import,
    # an export changes nothing here; on a storage host its receive is resumed by the next export
    "export": lambda ctx, intent: (Outcome.FAILED, "cut short; export it again (a storage host resumes it)"),
    "activate": _activate,
    "activate-once": _activate_once,
    "rollback": lambda ctx, intent: _new_environment(ctx, intent, "new"),
    "roll-forward": _roll_forward,
    "rollback-destroy-newer": _rollback_in_place,
    "destroy": _destroy,
    "prune": _destroy,
    "keep": lambda ctx, intent: _user_prop(ctx, intent, Prop.KEEP, "on"),
    "unkeep": lambda ctx, intent: _user_prop(ctx, intent, Prop.KEEP, None),
    "mark-good": lambda ctx, intent: _user_prop(ctx, intent, Prop.LAST_GOOD, intent.data.get("value", "")),
    "mark-failed": lambda ctx, intent: _user_prop(ctx, intent, Prop.FAILED, intent.data.get("value", "")),
    # the boot a bless was about is over: the next good boot blesses again (the counter counts till then)
    "factory-seal": lambda ctx, intent: _seal(ctx, intent),
    "bless": lambda ctx, intent: (Outcome.FAILED, "cut short; the next good boot is blessed instead"),
}


# a factory reset is finished by the agent from its own plan (bootagent.reset), not from here
OWNED_BY_THE_AGENT = frozenset({"factory-reset"})


def _seal(ctx: ResumeContext, intent: JournalEntry) -> Verdict:
    container = intent.data.get("container", "")
    if (
        container
        and ctx.zfs.exists(f"{container}/system@factory")
        and ctx.zfs.holds(f"{container}/system@factory")
    ):
        return Outcome.RESUMED, f"the baseline {container} had been sealed"
    return Outcome.FAILED, "the seal was cut short; seal again with 'bootagent factory seal --replace'"


def resolve_pending(ctx: ResumeContext) -> list[Resolution]:
    """Close every pending intent this version understands; return what was done (for the user)."""
    out: list[Resolution] = []
    pending = ctx.journal.pending()
    if pending and ctx.boot_root is not None and not ctx.zfs.exists(ctx.boot_root):
        # what is missing would be taken for what was never made: judge nothing until both pools are here
        LOG.warning(
            "%d operation(s) cut short earlier stay pending: the boot pool's %s cannot be read",
            len(pending),
            ctx.boot_root,
        )
        return out
    for intent in reversed(pending):
        if intent.action in OWNED_BY_THE_AGENT:
            LOG.info("%s %s is carried on by the early-boot agent at boot", intent.action, intent.target)
            continue
        resolver = _RESOLVERS.get(intent.action)
        if resolver is None:
            LOG.warning(
                "an operation cut short earlier (%s %s) is not one this version can finish; it stays pending",
                intent.action,
                intent.target,
            )
            continue
        try:
            outcome, detail = resolver(ctx, intent)
        except BootagentError as exc:
            LOG.warning(
                "could not finish %s %s, cut short earlier: %s (it stays pending)",
                intent.action,
                intent.target,
                exc.message,
            )
            continue
        ctx.journal.close_pending(intent, outcome, detail)
        resolution = Resolution(intent, outcome, detail)
        LOG.info("%s", resolution.describe())
        out.append(resolution)
    return out
