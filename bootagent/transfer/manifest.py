"""What an export holds, written beside its streams and checked before an import receives anything.

The manifest names the machine, environment and snapshot, and for each part (the root and, in a two-pool
layout, the /boot half) the snapshot's guid (zfs receive keeps it), the guid it is incremental to, whether
it is a raw (encrypted) stream, and the stream's size and SHA-256 -- of a file's or standard output's
stream; a storage host's copy has none (null): its zfs receive checked every record and the guid is
checked after, and the stream went from process to process without passing through bootagent. Schema
version 2 (1 had a SHA-256 for every part); readers read both and refuse other versions rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bootagent.errors import RefusedError
from bootagent.names import validate_name

FORMAT = "bootagent-export"
SCHEMA_VERSION = 2
READS = (1, 2)
PARTS = ("root", "boot")


@dataclass(frozen=True)
class Part:
    part: str  # "root" or "boot"
    dataset: str  # the sender's dataset
    snapshot_guid: int
    from_snapshot: str | None  # the snapshot name it is incremental to, or None (a full stream)
    from_guid: int | None
    raw: bool  # zfs send -w: an encrypted dataset, sent still encrypted
    bytes: int
    sha256: str | None  # None: a storage host's copy (see above)
    file: str | None = None  # the stream's file name, beside the manifest (file exports only)


@dataclass(frozen=True)
class Manifest:
    machine: str
    environment: str
    snapshot: str
    exported: int  # epoch seconds
    version: str  # bootagent's
    parts: tuple[Part, ...]
    properties: Mapping[str, str] = field(default_factory=dict)  # description, kernel, created-by

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.part == name), None)

    @property
    def label(self) -> str:
        return f"{self.machine}: {self.environment}@{self.snapshot}"

    def to_json(self, *, compact: bool = False) -> str:
        data: dict[str, Any] = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **asdict(self)}
        data["properties"] = dict(self.properties)
        if compact:
            return json.dumps(data, separators=(",", ":"), sort_keys=True)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> Manifest:
        def bad(why: str) -> RefusedError:
            return RefusedError(
                f"{where}: not a usable export manifest ({why})",
                hint="give the manifest 'bootagent export' wrote beside the stream; nothing was changed",
            )

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise bad(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f'no "format": "{FORMAT}"')
        if data.get("schema_version") not in READS:
            raise bad(
                f"schema version {data.get('schema_version')!r}; this bootagent reads "
                + " and ".join(map(str, READS))
            )
        try:
            parts = tuple(_part(p) for p in data["parts"])
            manifest = cls(
                machine=_text(data["machine"]),
                environment=validate_name(_text(data["environment"]), what="environment name"),
                snapshot=validate_name(_text(data["snapshot"]), what="snapshot name"),
                exported=_int(data["exported"]),
                version=_text(data["version"]),
                parts=parts,
                properties={_text(k): _text(v) for k, v in dict(data.get("properties") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"{type(exc).__name__}: {exc}") from None
        if manifest.part("root") is None:
            raise bad("it has no root part")
        if len({p.part for p in parts}) != len(parts):
            raise bad("a part is listed twice")
        return manifest


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _part(data: object) -> Part:
    if not isinstance(data, dict):
        raise TypeError("a part is not an object")
    name = _text(data["part"])
    if name not in PARTS:
        raise ValueError(f"unknown part {name!r}")
    sha = None if data["sha256"] is None else _text(data["sha256"])
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ValueError(f"sha256 {sha!r} is not 64 hex digits")
    if sha is None and data.get("file") is not None:
        raise ValueError("a file's stream has no sha256")
    from_snapshot = data.get("from_snapshot")
    from_guid = data.get("from_guid")
    if (from_snapshot is None) != (from_guid is None):
        raise ValueError("from_snapshot and from_guid go together")
    file = data.get("file")
    if file is not None and ("/" in _text(file) or file in ("", ".", "..")):
        raise ValueError(f"file {file!r} must be a plain name beside the manifest")
    return Part(
        part=name,
        dataset=_text(data["dataset"]),
        snapshot_guid=_int(data["snapshot_guid"]),
        from_snapshot=None if from_snapshot is None else _text(from_snapshot),
        from_guid=None if from_guid is None else _int(from_guid),
        raw=bool(data["raw"]),
        bytes=_int(data["bytes"]),
        sha256=sha,
        file=file,
    )
