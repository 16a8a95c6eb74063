"""Export and import end to end, with real OpenZFS on both sides: one guest sends an environment over ssh
to a second guest acting as the storage host (a private QEMU socket network between them, on this machine
only), only the difference travels the second time, an export cut off half-way is resumed from the host's
receive resume token, a damaged stream is refused with nothing changed, the host lists its exports and
removes the expired ones, and the environment -- destroyed here -- comes back from the host and boots."""

from __future__ import annotations

import json
import re
import time

import pytest

from testbed.layout import be_dataset
from testbed.machine import Machine
from testbed.network import link, trust_ssh

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

STORE_DATASET = "rpool/exports"
WAIT = 900.0

# the connection drops after this many bytes: a wrapper in front of ssh for one command
CUT_SSH = """set -e
mkdir -p /root/cut
cat > /root/cut/ssh <<'EOF'
#!/bin/sh
head -c 2000000 | /usr/bin/ssh "$@"
EOF
chmod 755 /root/cut/ssh
"""


def export(m: Machine, target: str, location: str) -> dict:  # type: ignore[type-arg]
    """`bootagent --json export`; its progress lines (stderr) are shown when it fails."""
    out = m.check(
        f"bootagent --json export {target} {location} --machine web1 2>/tmp/export.err "
        "|| { cat /tmp/export.err; exit 1; }",
        1200,
    )
    return json.loads(out)  # type: ignore[no-any-return]


def fill(m: Machine, name: str, path: str, mib: int) -> None:
    """Write `mib` MiB of incompressible data into environment `name` (mounted for it)."""
    m.check(
        f"mkdir -p /mnt/{name} && mount -t zfs -o zfsutil {be_dataset(name)} /mnt/{name} && "
        f"head -c {mib}M /dev/urandom > /mnt/{name}{path} && sha256sum /mnt/{name}{path} | cut -d' ' -f1 "
        f"> /root/{name}.sum && umount /mnt/{name}",
        600,
    )


@pytest.mark.boots(1)
def test_export_to_a_storage_host_resume_verify_expire_and_import_back(
    booted: Machine, second_booted: Machine
) -> None:
    client, host = booted, second_booted
    net = link(host, client)
    store = f"ssh://root@{net.ip(host)}/{STORE_DATASET}"

    # the storage host: a dataset for exports, and sshd letting the client in with its key
    host.check(f"zfs create -o canmount=off -o mountpoint=none {STORE_DATASET}")
    trust_ssh(client, host, net.ip(host))

    # an environment with something of its own, exported whole
    client.check("bootagent create web", 600)
    fill(client, "web", "/root/first.bin", 8)
    first = export(client, "web", store)
    assert first["parts"][0]["incremental_from"] is None
    full_bytes = first["bytes"]
    assert full_bytes > 8 << 20
    snap1 = first["manifest"]["snapshot"]
    stored = f"{STORE_DATASET}/web1/web/root"
    guid_here = client.check(f"zfs get -H -p -o value guid {be_dataset('web')}@{snap1}").strip()
    assert host.check(f"zfs get -H -p -o value guid {stored}@{snap1}").strip() == guid_here
    assert host.check(f"zfs get -H -o value mounted {stored}").strip() == "no"

    # the second export of the same environment sends only the difference
    fill(client, "web", "/root/second.bin", 2)
    second = export(client, "web", store)
    assert second["parts"][0]["incremental_from"] == snap1
    delta = second["bytes"]
    print(f"export sizes: full {full_bytes} bytes, then the difference {delta} bytes")
    assert 2 << 20 < delta < full_bytes / 2

    # cut off half-way: the host keeps a resume token; the next export finishes it
    fill(client, "web", "/root/third.bin", 6)
    client.check(CUT_SSH)
    code, _ = client.run(
        f"PATH=/root/cut:$PATH bootagent export web {store} --machine web1 >/tmp/cut.out 2>&1", 1200
    )
    said = client.check("cat /tmp/cut.out")
    assert code == 7, said  # an operation stopped part-way
    assert "the storage host kept what arrived" in said
    assert "hint: run the same export again" in said
    assert host.check(f"zfs get -H -o value receive_resume_token {stored}").strip() not in ("", "-")
    listed = client.check(f"bootagent store list {store}")
    assert f"interrupted receive (the next export resumes it): {stored}" in listed
    cut_snap = (
        client.check(f"zfs list -H -t snapshot -o name -s createtxg -d 1 {be_dataset('web')} | tail -1")
        .strip()
        .split("@")[1]
    )
    third = export(client, f"web@{cut_snap}", store)
    assert third["parts"][0]["resumed"] is True
    assert host.check(f"zfs get -H -o value receive_resume_token {stored}").strip() == "-"
    assert cut_snap in host.check(f"zfs list -H -t snapshot -o name -d 1 {stored}")

    # a damaged stream is refused before anything is received (its manifest's SHA-256), and without the
    # manifest zfs receive refuses it by its own checksums: nothing is changed either way
    snap2 = second["manifest"]["snapshot"]
    client.check(f"bootagent export web@{snap2} /root/web.zfs --base {snap1} --machine web1 2>/dev/null")
    size = int(client.check("stat -c %s /root/web.zfs"))
    client.check(f"printf 'X' | dd of=/root/web.zfs bs=1 seek={size // 2} conv=notrunc 2>/dev/null")
    before = client.check("zfs list -H -t all -o name")
    code, out = client.run("bootagent import /root/web.zfs --name broken 2>&1")
    assert code == 5, out
    assert "SHA-256" in out
    code, out = client.run(
        "bootagent import - --name broken < /root/web.zfs 2>&1"
    )  # no manifest: ZFS's check
    assert code != 0, out
    assert client.check("zfs list -H -t all -o name") == before

    # the storage host lists what it has, and removes what is older than the retention time
    listed = client.check(f"bootagent --json store list {store}")
    exports = json.loads(listed)["exports"]
    assert [(e["machine"], e["environment"], e["snapshot"]) for e in exports] == [
        ("web1", "web", snap1),
        ("web1", "web", snap2),
        ("web1", "web", cut_snap),
    ]
    old = int(time.time()) - 49 * 3600
    host.check(f"zfs set org.bootagent:exported={old} {stored}@{snap1}")
    expired = client.check(f"bootagent store expire {store} --yes")
    assert f"{stored}@{snap1}" in expired
    left = host.check(f"zfs list -H -t snapshot -o name -d 1 {stored}")
    assert snap1 not in left
    assert cut_snap in left

    # disaster: the environment is destroyed here; it comes back from the host and boots
    want = client.check("cat /root/web.sum").strip()
    client.check("bootagent destroy web --yes", 600)
    assert "web" not in [e["name"] for e in json.loads(client.check("bootagent list --json"))["environments"]]
    got = json.loads(
        client.check(
            f"bootagent --json import {store}/web1/web 2>/tmp/import.err "
            "|| { cat /tmp/import.err; exit 1; }",
            1200,
        )
    )
    assert got["environment"] == "web"
    assert got["snapshot"] == cut_snap
    print(f"import: {got['bytes']} bytes in {got['seconds']} s")
    # the fleet's view of it: the last export's age
    status = json.loads(client.check("bootagent status --json"))
    assert status["last_export_epoch"] is None  # web, the exported one, was destroyed and imported anew
    client.check(f"bootagent export web@{cut_snap} - >/dev/null 2>&1", 1200)  # to nowhere, but whole
    prom = client.check(
        "mkdir -p /var/lib/prometheus/node-exporter && systemctl start bootagent-textfile.service && "
        "cat /var/lib/prometheus/node-exporter/bootagent.prom"
    )
    assert re.search(r"^bootagent_last_export_timestamp_seconds [0-9.e+]+$", prom, re.M), prom
    client.check("bootagent activate web")
    client.reboot()
    client.wait_for_boot(WAIT)
    assert client.check("findmnt -n -o SOURCE /").strip() == be_dataset("web")
    assert client.check("sha256sum /root/third.bin | cut -d' ' -f1").strip() == want
    assert re.search(r"imported from ssh://", client.check("bootagent list web --json"))
