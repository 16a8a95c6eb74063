"""The pure pieces of a transfer: the stream header, the manifest, the incremental base, the progress line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading

import pytest
from pytest_mock import MockerFixture

from bootagent.errors import RefusedError
from bootagent.transfer.base import AlreadyThere, Full, Incremental, Refuse, Snap, choose_base
from bootagent.transfer.copy import FileEnd, copy
from bootagent.transfer.manifest import Manifest, Part
from bootagent.transfer.progress import ProgressLine, duration, line, size
from bootagent.transfer.stream import DMU_BACKUP_MAGIC, StreamHeader, pump
from tests.unit.transfer.zfs_commands import make_stream


def test_the_header_is_read_in_either_byte_order() -> None:
    little = make_stream("rpool/ROOT/beta@s3", 0xABC, 0x123, {})
    header = StreamHeader.parse(little)
    assert (header.toname, header.toguid, header.fromguid, header.incremental) == (
        "rpool/ROOT/beta@s3",
        0xABC,
        0x123,
        True,
    )
    name = b"rpool/ROOT/beta@s3".ljust(256, b"\0")
    big = struct.pack(">IIQQQIIQQ256s", 0, 0, DMU_BACKUP_MAGIC, 17, 5, 2, 4, 7, 0, name)
    assert StreamHeader.parse(big).toguid == 7
    assert not StreamHeader.parse(big).incremental


@pytest.mark.parametrize(("data", "why"), [(b"", "ends after 0 bytes"), (b"x" * 400, "no BEGIN record")])
def test_what_is_not_a_stream_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(RefusedError, match=why):
        StreamHeader.parse(data)


def test_the_pump_hashes_counts_and_reports() -> None:
    seen: list[int] = []
    sink = io.BytesIO()
    copied = pump(io.BytesIO(b"b" * 3_000_000), sink, first=b"a", progress=seen.append)
    assert copied.bytes == 3_000_001 == len(sink.getvalue())
    assert seen[-1] == 3_000_001
    assert len(seen) == 4  # the first bytes, then 1 MiB chunks
    assert copied.sha256 == hashlib.sha256(b"a" + b"b" * 3_000_000).hexdigest()


def manifest(**part: object) -> Manifest:
    base = {
        "part": "root",
        "dataset": "rpool/ROOT/beta",
        "snapshot_guid": 5,
        "from_snapshot": None,
        "from_guid": None,
        "raw": False,
        "bytes": 10,
        "sha256": "a" * 64,
        "file": "beta.zfs",
    }
    base.update(part)
    return Manifest("web1", "beta", "s3", 1_800_000_000, "0.1", (Part(**base),), {"kernel": "6.1"})  # type: ignore[arg-type]


def test_the_manifest_round_trips_and_refuses_what_it_cannot_trust() -> None:
    m = manifest()
    assert Manifest.from_json(m.to_json(), where="x") == m
    assert Manifest.from_json(m.to_json(compact=True), where="x") == m
    data = json.loads(m.to_json())
    changes: list[tuple[dict[str, object], str]] = [
        ({"schema_version": 3}, "schema version 3; this bootagent reads 1 and 2"),
        ({"format": "tar"}, "format"),
        ({"environment": "../x"}, "InvalidNameError|environment"),
        ({"parts": []}, "no root part"),
        ({"parts": [{**data["parts"][0], "sha256": "xyz"}]}, "64 hex"),
        ({"parts": [{**data["parts"][0], "file": "../etc/passwd"}]}, "plain name"),
        ({"parts": [{**data["parts"][0], "sha256": None}]}, "a file's stream has no sha256"),
        ({"parts": [{**data["parts"][0], "from_guid": 3}]}, "go together"),
        ({"parts": [data["parts"][0], data["parts"][0]]}, "twice"),
        ({"exported": -1}, "non-negative"),
    ]
    for change, why in changes:
        with pytest.raises(Exception, match=why):
            Manifest.from_json(json.dumps({**data, **change}), where="m.json")
    with pytest.raises(RefusedError, match="not JSON"):
        Manifest.from_json("{", where="m.json")
    # schema 1 (a SHA-256 for every part) is still read; a storage host's copy has none
    assert Manifest.from_json(json.dumps({**data, "schema_version": 1}), where="x") == m
    stored = manifest(sha256=None, file=None)
    assert Manifest.from_json(stored.to_json(compact=True), where="x") == stored


SNAPS = [Snap("s1", 11, 1), Snap("s2", 22, 2), Snap("s3", 33, 3)]


@pytest.mark.parametrize(
    ("wanted", "remote", "full", "expected"),
    [
        ("s3", None, False, Full()),
        ("s3", [11, 22], False, Incremental(SNAPS[1])),
        ("s3", [11], False, Incremental(SNAPS[0])),
        ("s2", [11, 22], False, AlreadyThere()),
        ("s1", [22], False, "newer state"),
        ("s3", [99], False, "none of this one's"),
        ("s3", [11, 99], False, "share up to s1"),
        ("s3", [], False, "never finished"),
        ("s3", [11], True, "full stream cannot"),
        ("s9", None, False, "no snapshot s9"),
    ],
)
def test_the_incremental_base_is_the_newest_snapshot_the_receiver_has(
    wanted: str, remote: list[int] | None, full: bool, expected: object
) -> None:
    got = choose_base(SNAPS, wanted, remote, full=full)
    if isinstance(expected, str):
        assert isinstance(got, Refuse)
        assert expected in got.why
    else:
        assert got == expected


def test_the_progress_line() -> None:
    assert line("export beta@s3", 12 << 20, 40 << 20, 2.0) == (
        "export beta@s3: 12.0 MiB of ~40.0 MiB (30 %), 6.0 MiB/s, 0:05 left"
    )
    assert line("x", 100, None, 1.0) == "x: 100 B, 100 B/s"
    assert (size(5 << 30), duration(3725)) == ("5.0 GiB", "1:02:05")
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0])
    out = io.StringIO()
    bar = ProgressLine("x", 100, out, tty=False, clock=lambda: next(clock))
    bar(5)  # under 10 %, 1 s: nothing
    bar(50)  # 50 %: a line
    bar(51)  # 40 s since the last line: a line
    assert out.getvalue().count("\n") == 2
    assert bar.done(100, 41.0).startswith("x: 100 B in 0:41")


@pytest.mark.parametrize("checksum", [False, True])
def test_between_two_pipes_without_a_checksum_the_kernel_moves_the_bytes(
    checksum: bool, mocker: MockerFixture
) -> None:
    """A copy from process to process (export to a storage host, import from one) never passes the bytes
    through bootagent: splice(2) joins the two pipes, as `zfs send | ssh ... zfs receive` would."""
    data = os.urandom(3_000_000)
    a_read, a_write = os.pipe()
    b_read, b_write = os.pipe()
    got = bytearray()

    def feed() -> None:
        with os.fdopen(a_write, "wb") as f:
            f.write(data)

    def drain() -> None:
        with os.fdopen(b_read, "rb") as f:
            got.extend(f.read())

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    spliced = mocker.spy(os, "splice")
    seen: list[int] = []
    source, sink = FileEnd(os.fdopen(a_read, "rb")), FileEnd(os.fdopen(b_write, "wb"))
    copied = copy(source, sink, progress=seen.append, checksum=checksum)
    sink.stream.close()
    source.stream.close()
    for t in threads:
        t.join(timeout=30)
    assert bytes(got) == data
    assert copied.bytes == len(data) == seen[-1]
    if checksum:
        assert spliced.call_count == 0
        assert copied.sha256 == hashlib.sha256(data).hexdigest()
    else:
        assert spliced.call_count >= 3  # 1 MiB at most a call, and the last one finds the end
        assert copied.sha256 is None


def test_where_the_kernel_cannot_splice_the_copy_goes_through_the_pump() -> None:
    source, sink = FileEnd(io.BytesIO(b"x" * 5000)), FileEnd(io.BytesIO())
    copied = copy(source, sink, progress=None, checksum=False)
    assert copied.bytes == 5000
    assert sink.stream.getvalue() == b"x" * 5000  # type: ignore[attr-defined]
    assert copied.sha256 is None
