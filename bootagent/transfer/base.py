"""Which snapshot an incremental send starts from: the newest one the receiver already has.

Pure: given the sender's snapshots of a dataset (oldest first, by createtxg) and the guids the receiver
holds (newest last), decide a full send, an incremental one, nothing (already there), or a refusal.
ZFS keeps a snapshot's guid through send and receive, so guids (not names) say what the receiver has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Snap:
    name: str  # the part after '@'
    guid: int
    createtxg: int


@dataclass(frozen=True)
class Full:
    pass


@dataclass(frozen=True)
class Incremental:
    base: Snap


@dataclass(frozen=True)
class AlreadyThere:
    pass


@dataclass(frozen=True)
class Refuse:
    why: str
    hint: str


Choice = Full | Incremental | AlreadyThere | Refuse


def choose_base(
    local: Sequence[Snap], wanted: str, remote_guids: Sequence[int] | None, *, full: bool = False
) -> Choice:
    """`remote_guids` is None when the receiver has no such dataset yet (oldest first otherwise)."""
    target = next((s for s in local if s.name == wanted), None)
    if target is None:
        return Refuse(f"there is no snapshot {wanted}", "see 'bootagent list -s'")
    if remote_guids is None:
        return Full()
    if target.guid in remote_guids:
        return AlreadyThere()
    if not remote_guids:
        return Refuse(
            "the receiver has the dataset but none of its snapshots (a receive that never finished?)",
            "remove it on the receiver, or export under another name with --as",
        )
    if full:
        return Refuse(
            "the receiver already holds this environment: a full stream cannot be added beside it",
            "export without --full (only the difference travels), or under another name with --as",
        )
    newest = remote_guids[-1]
    by_guid = {s.guid: s for s in local}
    base = by_guid.get(newest)
    if base is None:
        common = [s for s in local if s.guid in remote_guids]
        if not common:
            return Refuse(
                "the receiver holds an environment of this name with none of this one's snapshots",
                "export under another name with --as",
            )
        return Refuse(
            f"the receiver's newest snapshot of it is not one this machine has (they share up to "
            f"{common[-1].name})",
            "export under another name with --as, or remove the newer one on the receiver",
        )
    if base.createtxg >= target.createtxg:
        return Refuse(
            f"the receiver already has a newer state ({base.name}) than {wanted}",
            "older states are not added behind newer ones; export under another name with --as",
        )
    return Incremental(base)
