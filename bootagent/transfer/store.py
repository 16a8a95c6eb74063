"""The storage host's side: what is stored (per machine, per environment), and removing what is older than
the retention time (48 hours by default). Works through ssh from any machine, or on the storage host itself;
it needs nothing there but `zfs`.

    STORE/MACHINE/ENVIRONMENT/root@SNAP   (and .../boot@SNAP for a pair), each snapshot one export,
    with org.bootagent:exported (epoch seconds) and org.bootagent:manifest set once it is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bootagent.transfer.side import Side, Stored

DEFAULT_RETENTION_HOURS = 48


@dataclass(frozen=True)
class StoredExport:
    machine: str
    environment: str
    snapshot: str
    exported: int | None  # None: the receive never completed (no manifest recorded yet)
    used: int  # bytes only this export holds (its snapshots' used)
    referenced: int
    datasets: tuple[str, ...]  # the snapshots: root first, then boot

    @property
    def complete(self) -> bool:
        return self.exported is not None

    def age(self, now: float) -> float | None:
        return None if self.exported is None else max(0.0, now - self.exported)


@dataclass(frozen=True)
class Partial:
    """A receive cut short (it has a resume token): the next export of that environment finishes it."""

    dataset: str


def list_store(side: Side, store: str) -> tuple[list[StoredExport], list[Partial]]:
    snaps = side.snapshots(store, recursive=True)
    grouped: dict[tuple[str, str, str], list[Stored]] = {}
    prefix = store.rstrip("/") + "/"
    for snap in snaps:
        rel = snap.dataset[len(prefix) :] if snap.dataset.startswith(prefix) else ""
        parts = rel.split("/")
        if len(parts) != 3 or parts[2] not in ("root", "boot"):
            continue
        grouped.setdefault((parts[0], parts[1], snap.short), []).append(snap)
    out: list[StoredExport] = []
    for (machine, env, snap_name), rows in grouped.items():
        rows.sort(key=lambda r: 0 if r.dataset.endswith("/root") else 1)
        root = rows[0]
        out.append(
            StoredExport(
                machine=machine,
                environment=env,
                snapshot=snap_name,
                exported=root.exported if root.dataset.endswith("/root") else None,
                used=sum(r.used for r in rows),
                referenced=sum(r.referenced for r in rows),
                datasets=tuple(r.name for r in rows),
            )
        )
    out.sort(key=lambda e: (e.machine, e.environment, e.exported or 0, e.snapshot))
    partial = [Partial(d) for d in _resumable(side, store)]
    return out, partial


def _resumable(side: Side, store: str) -> list[str]:
    out = side.zfs(
        ["zfs", "get", "-H", "-r", "-t", "filesystem", "-o", "name,value", "receive_resume_token", store],
        what=f"looking for interrupted receives in {store}",
    )
    found: list[str] = []
    for line in out.splitlines():
        name, _, value = line.partition("\t")
        if value and value != "-":
            found.append(name)
    return found


def plan_expiry(exports: Sequence[StoredExport], *, now: float, retention_hours: float) -> list[StoredExport]:
    """The complete exports older than the retention time: each is kept at least that long, then deleted
    (the newest one too -- the storage host is a place to hand exports over, not an archive). An export
    that never completed has no age; the next export of that environment resumes it."""
    limit = retention_hours * 3600
    return [e for e in exports if e.exported is not None and now - e.exported > limit]


def expire(side: Side, store: str, doomed: Sequence[StoredExport]) -> list[str]:
    """Destroy the expired exports' snapshots, then the environments and machines left with none."""
    destroyed: list[str] = []
    for export in doomed:
        for name in export.datasets:
            side.zfs(["zfs", "destroy", name], what=f"destroying {name}")
            destroyed.append(name)
    left, partial = list_store(side, store)
    busy = {(e.machine, e.environment) for e in left} | {
        tuple(p.dataset[len(store) + 1 :].split("/")[:2]) for p in partial
    }
    for machine, env in sorted({(e.machine, e.environment) for e in doomed}):
        if (machine, env) not in busy:
            name = f"{store}/{machine}/{env}"
            side.zfs(["zfs", "destroy", "-r", name], what=f"destroying {name}")
            destroyed.append(name)
    machines_left = {m for m, _ in busy}
    for machine in sorted({e.machine for e in doomed} - machines_left):
        name = f"{store}/{machine}"
        if not side.snapshots(name, recursive=True):
            side.zfs(["zfs", "destroy", "-r", name], what=f"destroying {name}")
            destroyed.append(name)
    return destroyed
