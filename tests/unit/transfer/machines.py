"""This machine and a storage host for the transfer tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import io

from bootagent.environments import BootEnvironments
from bootagent.transfer.export import Exporter
from bootagent.transfer.importer import Importer
from bootagent.transfer.side import Side
from tests.unit.transfer.zfs_commands import Network

NOW = 1_800_000_000.0
STORE = "ssh://backup@store1/tank/exports"


def exporter(envs: BootEnvironments, net: Network, *, stdout: io.BytesIO | None = None) -> Exporter:
    return Exporter(
        envs,
        Side(net),
        net,
        remote=lambda host: Side(net, host),
        machine="web1",
        progress_out=io.StringIO(),
        stdout=stdout,
        clock=lambda: NOW,
    )


def importer(envs: BootEnvironments, net: Network, *, stdin: io.BytesIO | None = None) -> Importer:
    return Importer(
        envs, Side(net), net, remote=lambda host: Side(net, host), progress_out=io.StringIO(), stdin=stdin
    )
