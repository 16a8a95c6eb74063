"""The storage host's listing and expiry, through ssh and on the host itself (`bootagent store ...`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bootagent.bootmenu import MenuRefresh
from bootagent.cli.main import main
from bootagent.environments import BootEnvironments
from bootagent.transfer.side import Side
from bootagent.transfer.store import expire, list_store, plan_expiry
from bootagent.transfer.target import StorageHost
from tests.unit.transfer.machines import NOW, STORE, exporter
from tests.unit.transfer.zfs_commands import Machine, Network

HOST = StorageHost(host="store1", dataset="tank/exports", user="backup")
HOUR = 3600


def age(store: Machine, snapshot: str, hours: float) -> None:
    store.zfs.nodes[snapshot].user_props["org.bootagent:exported"] = str(int(NOW - hours * HOUR))


@pytest.fixture
def stored(envs: BootEnvironments, net: Network, store: Machine) -> Machine:
    """web1/beta@s2 (50 h old), web1/beta@s3 (1 h), web1/alpha@s3 (72 h)."""
    for target in ("beta@s2", "beta@s3", "alpha@s3"):
        exporter(envs, net).export(target, StorageHost("store1", "tank/exports", "backup"))
    age(store, "tank/exports/web1/beta/root@s2", 50)
    age(store, "tank/exports/web1/beta/root@s3", 1)
    age(store, "tank/exports/web1/alpha/root@s3", 72)
    return store


def test_the_listing_is_per_machine_and_environment_with_age(stored: Machine, net: Network) -> None:
    exports, partial = list_store(Side(net, HOST), "tank/exports")
    assert [(e.machine, e.environment, e.snapshot) for e in exports] == [
        ("web1", "alpha", "s3"),
        ("web1", "beta", "s2"),
        ("web1", "beta", "s3"),
    ]
    assert all(e.complete for e in exports)
    assert exports[0].age(NOW) == 72 * HOUR
    assert partial == []


def test_expiry_removes_only_what_is_older_than_the_retention(stored: Machine, net: Network) -> None:
    side = Side(net, HOST)
    exports, _ = list_store(side, "tank/exports")
    doomed = plan_expiry(exports, now=NOW, retention_hours=48)
    assert [(e.environment, e.snapshot) for e in doomed] == [("alpha", "s3"), ("beta", "s2")]
    removed = expire(side, "tank/exports", doomed)
    assert "tank/exports/web1/alpha" in removed  # no export of it is left: the environment goes too
    assert "tank/exports/web1/beta/root@s3" in stored.zfs.nodes  # 1 h old: kept
    assert "tank/exports/web1/beta/root@s2" not in stored.zfs.nodes
    assert "tank/exports/web1" in stored.zfs.nodes  # the machine still has an export


def test_an_interrupted_receive_is_listed_and_never_expired(
    envs: BootEnvironments, net: Network, store: Machine
) -> None:
    store.cut_after = 330
    with pytest.raises(Exception, match="resume token"):
        exporter(envs, net).export("gamma@s1", HOST)
    exports, partial = list_store(Side(net, HOST), "tank/exports")
    assert [p.dataset for p in partial] == ["tank/exports/web1/gamma/root"]
    assert plan_expiry(exports, now=NOW + 1000 * HOUR, retention_hours=48) == []


def run_cli(net: Network, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), runner=net, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_store_list_and_expire_on_the_command_line(
    stored: Machine, net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.time", lambda: NOW)
    code, out, err = run_cli(net, "store", "list", STORE)
    assert code == 0, err
    assert all(word in out for word in ("web1", "alpha", "3 d", "50 h"))
    code, out, _ = run_cli(net, "--json", "store", "list", STORE)
    assert [e["snapshot"] for e in json.loads(out)["exports"]] == ["s3", "s2", "s3"]
    code, out, _ = run_cli(net, "store", "expire", STORE, "--dry-run")
    assert code == 0
    assert "would remove" in out
    assert "alpha@s3" in out
    assert "tank/exports/web1/alpha/root@s3" in stored.zfs.nodes
    code, _, err = run_cli(net, "store", "expire", STORE)  # no terminal, no --yes: refused
    assert code == 5
    assert "--yes" in err
    code, out, _ = run_cli(net, "store", "expire", STORE, "--older-than", "3d", "--yes")
    assert code == 0
    assert "nothing in" in out
    code, out, _ = run_cli(net, "store", "expire", STORE, "--yes")
    assert code == 0
    assert "tank/exports/web1/beta/root@s2" in out
    assert "tank/exports/web1/alpha/root@s3" not in stored.zfs.nodes
    code, _, err = run_cli(net, "store", "expire", STORE, "--older-than", "soon")
    assert code == 2
    assert "48h" in err


def test_export_to_standard_output_keeps_it_for_the_stream(tmp_path: Path) -> None:
    """What the verb says goes to stderr: stdout carries nothing but the stream (checked through main)."""
    from tests.fakes import reference_pool

    machine = Machine(reference_pool())
    network = Network(machine)
    data = io.BytesIO()
    out, err = io.StringIO(), io.StringIO()
    config = tmp_path / "bootagent.yaml"
    config.write_text(f"pool: rpool\ngrubenv: {tmp_path}/grubenv\ngrub_update: false\n")
    refreshed: list[str] = []

    class Menu:
        def refresh(self) -> MenuRefresh:
            refreshed.append("update-grub")
            return MenuRefresh(True)

    code = main(
        ["--config", str(config), "export", "beta@s3", "-", "--machine", "web1"],
        backend=lambda: machine.zfs,
        menu=lambda _config: Menu(),
        runner=network,
        streams=network,
        stdout=out,
        stderr=err,
        stdout_bytes=data,
    )
    assert code == 0, err.getvalue()
    assert out.getvalue() == ""
    assert refreshed == []  # no environment came or went: GRUB's menu is not made again
    assert "exported beta@s3 to -" in err.getvalue()
    assert data.getvalue()[8:16] == (0x2F5BACBAC).to_bytes(8, "little")
    # an error, even as JSON, is not written into the stream either
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(config), "--json", "export", "beta@nope", "-"],
        backend=lambda: machine.zfs,
        runner=network,
        streams=network,
        stdout=out,
        stderr=err,
        stdout_bytes=io.BytesIO(),
    )
    assert code == 4
    assert out.getvalue() == ""
    assert '"exit_code": 4' in err.getvalue()
