"""Export and import against two in-memory machines (this one and a storage host) spoken to with the
`zfs` command line: what travels, what is checked, and that a refused import changes nothing."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from bootagent.environments import BootEnvironments
from bootagent.errors import IncompleteError, NotFoundError, RefusedError, UsageError
from bootagent.journal import Outcome
from bootagent.model import DatasetKind, Prop
from bootagent.transfer.manifest import Manifest
from bootagent.transfer.side import EXPORTED, MACHINE, MANIFEST
from bootagent.transfer.target import StorageHost, StreamFile, parse_location
from tests.unit.transfer.machines import NOW, STORE, exporter, importer
from tests.unit.transfer.zfs_commands import Machine, Network, guid_of


def sends(machine: Machine) -> list[list[str]]:
    return [a for a in machine.log if a[:2] == ["zfs", "send"] and "-n" not in a]


# --- to a file and back -------------------------------------------------------------------------------
def test_a_file_export_writes_the_stream_and_a_manifest_that_an_import_checks(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path
) -> None:
    path = tmp_path / "beta.zfs"
    done = exporter(envs, net).export("beta@s3", parse_location(str(path)))
    manifest = Manifest.from_json((tmp_path / "beta.zfs.manifest.json").read_text(), where="m")
    root = manifest.part("root")
    assert root is not None
    assert (manifest.machine, manifest.environment, manifest.snapshot) == ("web1", "beta", "s3")
    assert root.snapshot_guid == guid_of(here.zfs, "rpool/ROOT/beta@s3")
    assert (root.from_guid, root.raw, root.bytes, root.file) == (None, False, path.stat().st_size, "beta.zfs")
    assert done.bytes == path.stat().st_size
    # recorded: in the journal, and as the environment's last export (fleet status shows its age)
    assert envs.inventory().find("beta").last_export == int(NOW)
    assert [(e.action, e.target, e.outcome) for e in envs.journal.entries()][-2:] == [
        ("export", "beta@s3", Outcome.INTENT),
        ("export", "beta@s3", Outcome.OK),
    ]
    assert sends(here)[-1] == ["zfs", "send", "-L", "-e", "-c", "rpool/ROOT/beta@s3"]
    assert not list(tmp_path.glob("*.partial"))

    got = importer(envs, net).import_(StreamFile(str(path)), name="restored")
    assert got.environment == "restored"
    new = here.zfs.nodes["rpool/ROOT/restored"]
    assert new.files == here.zfs.nodes["rpool/ROOT/beta@s3"].files
    assert (new.mountpoint, new.canmount, new.origin) == ("/", "noauto", None)
    assert guid_of(here.zfs, "rpool/ROOT/restored@s3") == root.snapshot_guid
    assert new.user_props[Prop.KERNEL.value] == "6.1.0-30-amd64"
    assert "imported from" in new.user_props[Prop.DESCRIPTION.value]
    assert "restored" in [e.name for e in envs.inventory().environments]
    assert [(e.action, e.outcome) for e in envs.journal.entries()][-2:] == [
        ("import", Outcome.INTENT),
        ("import", Outcome.OK),
    ]


def test_an_export_without_a_snapshot_takes_one_first(
    envs: BootEnvironments, net: Network, tmp_path: Path
) -> None:
    done = exporter(envs, net).export("beta", StreamFile(str(tmp_path / "b.zfs")))
    assert done.manifest.snapshot.startswith("export-")
    snap = envs.inventory().find_snapshot("beta", done.manifest.snapshot)
    assert snap.description == "the state exported"


def test_a_file_is_never_overwritten(envs: BootEnvironments, net: Network, tmp_path: Path) -> None:
    (tmp_path / "b.zfs").write_bytes(b"precious")
    snapshots = len(envs.inventory().find("beta").snapshots)
    for target in ("beta@s3", "beta"):
        with pytest.raises(RefusedError, match="exists"):
            exporter(envs, net).export(target, StreamFile(str(tmp_path / "b.zfs")))
    assert (tmp_path / "b.zfs").read_bytes() == b"precious"
    assert len(envs.inventory().find("beta").snapshots) == snapshots  # refused before any snapshot


def test_a_failed_send_leaves_no_stream_that_looks_whole(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path
) -> None:
    here.fail_send = "cannot send rpool/ROOT/beta@s3: I/O error"
    with pytest.raises(Exception, match="I/O error"):
        exporter(envs, net).export("beta@s3", StreamFile(str(tmp_path / "b.zfs")))
    assert not list(tmp_path.glob("b.zfs*"))  # neither the stream, nor its .partial, nor a manifest
    assert envs.inventory().find("beta").last_export is None
    assert envs.journal.entries()[-1].outcome is Outcome.FAILED


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "SHA-256"),
        ("cut", "bytes, its manifest says"),
        ("other", "another snapshot"),
    ],
)
def test_a_damaged_or_mismatching_file_is_refused_and_nothing_changes(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path, damage: str, message: str
) -> None:
    path = tmp_path / "beta.zfs"
    exporter(envs, net).export("beta@s3", StreamFile(str(path)))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[330] ^= 0x01
    elif damage == "cut":
        data = data[:-40]
    else:  # a stream of another snapshot under this manifest (same size: the header's name is padded)
        exporter(envs, net).export("alpha@s3", StreamFile(str(tmp_path / "alpha.zfs")))
        data = bytearray((tmp_path / "alpha.zfs").read_bytes())
        manifest = json.loads((tmp_path / "beta.zfs.manifest.json").read_text())
        manifest["parts"][0]["bytes"] = len(data)
        import hashlib

        manifest["parts"][0]["sha256"] = hashlib.sha256(data).hexdigest()
        (tmp_path / "beta.zfs.manifest.json").write_text(json.dumps(manifest))
    path.write_bytes(bytes(data))
    before = dict(here.zfs.nodes)
    receives = [a for a in here.log if a[:2] == ["zfs", "receive"]]
    with pytest.raises(RefusedError, match=message):
        importer(envs, net).import_(StreamFile(str(path)), name="restored")
    assert here.zfs.nodes.keys() == before.keys()
    assert [a for a in here.log if a[:2] == ["zfs", "receive"]] == receives  # zfs receive never ran


def test_a_missing_manifest_is_refused_unless_told_to_trust_the_stream(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path
) -> None:
    path = tmp_path / "beta.zfs"
    exporter(envs, net).export("beta@s3", StreamFile(str(path)))
    (tmp_path / "beta.zfs.manifest.json").unlink()
    with pytest.raises(NotFoundError, match="no manifest"):
        importer(envs, net).import_(StreamFile(str(path)))
    got = importer(envs, net).import_(StreamFile(str(path)), name="b2", no_manifest=True)
    assert here.zfs.nodes["rpool/ROOT/b2"].files == here.zfs.nodes["rpool/ROOT/beta@s3"].files
    assert got.snapshot == "s3"


def test_an_import_never_replaces_an_environment(
    envs: BootEnvironments, net: Network, tmp_path: Path
) -> None:
    path = tmp_path / "beta.zfs"
    exporter(envs, net).export("beta@s3", StreamFile(str(path)))
    with pytest.raises(RefusedError, match="never replaces"):
        importer(envs, net).import_(StreamFile(str(path)))  # its own name, beta, exists


def test_an_incremental_file_is_received_as_a_clone_of_its_base(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path
) -> None:
    path = tmp_path / "delta.zfs"
    exporter(envs, net).export("beta@s3", StreamFile(str(path)), base="s2")
    assert sends(here)[-1] == ["zfs", "send", "-L", "-e", "-c", "-i", "@s2", "rpool/ROOT/beta@s3"]
    got = importer(envs, net).import_(StreamFile(str(path)), name="again")
    assert got.incremental_from == "rpool/ROOT/beta@s2"
    assert here.zfs.nodes["rpool/ROOT/again"].origin == "rpool/ROOT/beta@s2"
    # without its base here, it is refused before anything is received
    for name in [n for n in here.zfs.nodes if n.startswith("rpool/ROOT/beta@s2")]:
        here.zfs.nodes[name].guid = 1
    with pytest.raises(RefusedError, match="not on this machine"):
        importer(envs, net).import_(StreamFile(str(path)), name="again2")


def test_standard_output_and_input(envs: BootEnvironments, net: Network, here: Machine) -> None:
    out = io.BytesIO()
    exporter(envs, net, stdout=out).export("alpha@s2", parse_location("-"))
    got = importer(envs, net, stdin=io.BytesIO(out.getvalue())).import_(parse_location("-"), name="piped")
    assert got.dataset == "rpool/ROOT/piped"
    assert here.zfs.nodes["rpool/ROOT/piped"].files == here.zfs.nodes["rpool/ROOT/alpha@s2"].files
    # a damaged stream on standard input: zfs receive refuses it, and nothing is left
    damaged = bytearray(out.getvalue())
    damaged[-5] ^= 0xFF
    with pytest.raises(Exception, match="checksum mismatch"):
        importer(envs, net, stdin=io.BytesIO(bytes(damaged))).import_(parse_location("-"), name="bad")
    assert "rpool/ROOT/bad" not in here.zfs.nodes
    with pytest.raises(RefusedError, match="not a ZFS send stream"):
        importer(envs, net, stdin=io.BytesIO(b"hello")).import_(parse_location("-"), name="bad")


def test_an_encrypted_dataset_is_sent_raw(
    envs: BootEnvironments, net: Network, here: Machine, tmp_path: Path
) -> None:
    here.zfs.nodes["rpool/ROOT/gamma"].native["encryption"] = "aes-256-gcm"
    done = exporter(envs, net).export("gamma@s1", StreamFile(str(tmp_path / "g.zfs")))
    assert sends(here)[-1] == ["zfs", "send", "-w", "rpool/ROOT/gamma@s1"]
    assert done.manifest.parts[0].raw is True


# --- to a storage host --------------------------------------------------------------------------------
def test_the_first_export_to_a_host_is_whole_and_the_next_only_the_difference(
    envs: BootEnvironments, net: Network, here: Machine, store: Machine
) -> None:
    first = exporter(envs, net).export("beta@s2", parse_location(STORE))
    stored = "tank/exports/web1/beta/root"
    assert first.parts[0].base is None
    assert guid_of(store.zfs, f"{stored}@s2") == guid_of(here.zfs, "rpool/ROOT/beta@s2")
    assert store.zfs.nodes["tank/exports/web1/beta"].mountpoint == "none"  # nothing mounts on the host
    assert store.zfs.nodes[f"{stored}@s2"].user_props[EXPORTED] == str(int(NOW))
    recorded = Manifest.from_json(store.zfs.nodes[f"{stored}@s2"].user_props[MANIFEST], where="host")
    assert recorded.snapshot == "s2"

    assert store.zfs.nodes["tank/exports/web1/beta"].user_props[MACHINE] == "web1"  # made with its label

    before = len(net.ssh)
    second = exporter(envs, net).export("beta@s3", parse_location(STORE))
    # over the ssh connection: what is there (one listing), its snapshots, the stream, the check, the record
    remote = [shlex.split(a[-1])[:2] + [shlex.split(a[-1])[-1]] for a in net.ssh[before:]]
    assert remote == [
        ["zfs", "list", stored],
        ["zfs", "list", stored],
        ["zfs", "receive", stored],
        ["zfs", "list", stored],
        ["zfs", "set", f"{stored}@s3"],
    ]
    assert second.parts[0].base == "s2"
    assert sends(here)[-1] == ["zfs", "send", "-L", "-e", "-c", "-i", "@s2", "rpool/ROOT/beta@s3"]
    assert second.parts[0].bytes > 0
    # the same state again: nothing travels
    again = exporter(envs, net).export("beta@s3", parse_location(STORE))
    assert again.parts[0].skipped
    assert again.bytes == 0
    # every command went through the export's one ssh connection (a master started and stopped each time)
    assert all("ControlPath=/run/fake/control" in a for a in net.ssh)
    assert [m[-1] for m in net.masters] == ["backup@store1"] * 6
    assert net.masters[1][-3:-1] == ["-O", "exit"]


def test_an_export_cut_off_is_resumed_by_the_next_one(
    envs: BootEnvironments, net: Network, here: Machine, store: Machine
) -> None:
    store.cut_after = 330  # the connection drops after the header and a little
    with pytest.raises(IncompleteError, match="cut off after .*kept what arrived") as cut:
        exporter(envs, net).export("beta@s3", parse_location(STORE))
    assert cut.value.hint == "run the same export again: it sends the rest first"
    stored = "tank/exports/web1/beta/root"
    assert store.tokens  # partially-complete state saved on the host
    done = exporter(envs, net).export("beta@s3", parse_location(STORE))
    assert done.parts[0].resumed
    assert here.resumed == ["rpool/ROOT/beta@s3"]  # zfs send -t TOKEN
    assert guid_of(store.zfs, f"{stored}@s3") == guid_of(here.zfs, "rpool/ROOT/beta@s3")
    assert not store.tokens
    assert MANIFEST in store.zfs.nodes[f"{stored}@s3"].user_props


def test_a_host_holding_something_else_under_the_name_is_refused(
    envs: BootEnvironments, net: Network, store: Machine
) -> None:
    exporter(envs, net).export("beta@s2", parse_location(STORE))
    with pytest.raises(RefusedError, match="none of this one's snapshots"):
        exporter(envs, net).export("alpha@s3", parse_location(STORE), as_name="beta")
    exporter(envs, net).export("beta@s3", parse_location(STORE))
    with pytest.raises(RefusedError, match="newer state"):
        exporter(envs, net).export("beta@s1", parse_location(STORE))
    with pytest.raises(UsageError, match="--base is for files"):
        exporter(envs, net).export("beta@s1", parse_location(STORE), base="s1")


def test_a_missing_store_dataset_is_refused_with_how_to_make_it(envs: BootEnvironments, net: Network) -> None:
    with pytest.raises(RefusedError, match="does not exist on store1"):
        exporter(envs, net).export("beta@s2", parse_location("ssh://store1/tank/nothing"))


def test_import_from_the_host_sends_only_what_this_machine_lacks(
    envs: BootEnvironments, net: Network, here: Machine, store: Machine
) -> None:
    exporter(envs, net).export("beta@s2", parse_location(STORE))
    exporter(envs, net).export("beta@s3", parse_location(STORE))
    # disaster: beta is gone here (its snapshots with it), then it comes back whole
    for name in [n for n in here.zfs.nodes if n.startswith("rpool/ROOT/beta")]:
        del here.zfs.nodes[name]
    here.zfs.mounted.clear()
    got = importer(envs, net).import_(parse_location(STORE + "/web1/beta"))
    assert (got.environment, got.snapshot, got.incremental_from) == ("beta", "s3", None)
    assert here.zfs.nodes["rpool/ROOT/beta"].files["/etc/step"] == "3"
    assert guid_of(here.zfs, "rpool/ROOT/beta@s3") == guid_of(store.zfs, "tank/exports/web1/beta/root@s3")
    assert sends(store)[-1] == ["zfs", "send", "-L", "-e", "-c", "tank/exports/web1/beta/root@s3"]


def test_import_from_the_host_is_a_clone_and_a_difference_when_the_base_is_here(
    envs: BootEnvironments, net: Network, here: Machine, store: Machine
) -> None:
    exporter(envs, net).export("beta@s2", parse_location(STORE))
    exporter(envs, net).export("beta@s3", parse_location(STORE))
    got = importer(envs, net).import_(parse_location(STORE + "/web1/beta@s3"), name="beta2")
    assert got.incremental_from == "rpool/ROOT/beta@s2"
    assert sends(store)[-1] == [
        "zfs",
        "send",
        "-L",
        "-e",
        "-c",
        "-i",
        "@s2",
        "tank/exports/web1/beta/root@s3",
    ]
    assert here.zfs.nodes["rpool/ROOT/beta2"].origin == "rpool/ROOT/beta@s2"
    assert here.zfs.nodes["rpool/ROOT/beta2"].files == here.zfs.nodes["rpool/ROOT/beta@s3"].files


def test_import_from_the_host_takes_the_newest_complete_export(
    envs: BootEnvironments, net: Network, here: Machine, store: Machine
) -> None:
    exporter(envs, net).export("beta@s2", parse_location(STORE))
    exporter(envs, net).export("beta@s3", parse_location(STORE))
    del store.zfs.nodes["tank/exports/web1/beta/root@s3"].user_props[MANIFEST]  # as if never recorded
    got = importer(envs, net).import_(parse_location(STORE + "/web1/beta"), name="b2")
    assert got.snapshot == "s2"
    with pytest.raises(RefusedError, match="has no manifest"):
        importer(envs, net).import_(parse_location(STORE + "/web1/beta@s3"), name="b3")


def test_import_from_the_host_refuses_an_unfinished_export(
    envs: BootEnvironments, net: Network, store: Machine
) -> None:
    store.cut_after = 330
    with pytest.raises(Exception, match="resume token"):
        exporter(envs, net).export("beta@s3", parse_location(STORE))
    with pytest.raises(NotFoundError, match="holds no export"):
        importer(envs, net).import_(parse_location(STORE + "/web1/beta"), name="x")


def test_an_interrupted_import_is_undone_by_the_next_command(envs: BootEnvironments, here: Machine) -> None:
    """A power cut after the receive and before the properties: the next change removes the half-import."""
    envs.journal.record(
        "import", "half", Outcome.INTENT, data={"dataset": "rpool/ROOT/half", "snapshot": "s3"}
    )
    here.zfs.add_fs("rpool/ROOT/half", mountpoint="/", canmount="noauto")
    here.zfs.add_snap("rpool/ROOT/half@s3")
    done = envs.resume_pending()
    assert [(r.outcome, r.intent.action) for r in done] == [(Outcome.ROLLED_BACK, "import")]
    assert "rpool/ROOT/half" not in here.zfs.nodes
    assert all(
        n.kind is not DatasetKind.SNAPSHOT or not n.name.startswith("rpool/ROOT/half")
        for n in here.zfs.nodes.values()
    )


def test_locations_parse_with_clear_errors() -> None:
    host = parse_location("ssh://backup@store1:2222/tank/exports/")
    assert host == StorageHost(host="store1", dataset="tank/exports", user="backup", port=2222)
    assert isinstance(host, StorageHost)
    assert host.ssh_argv(["zfs", "list", "a b"])[-1] == "zfs list 'a b'"
    assert "-p" in host.ssh_argv(["true"])
    for bad in ("ssh://store1", "ssh://store1/", "ssh://st ore/tank", "ssh://h:99999/tank"):
        with pytest.raises(UsageError):
            parse_location(bad)
    with pytest.raises(UsageError, match="manifest"):
        parse_location("/srv/b.zfs.manifest.json")
