"""A private network between two guests on this machine only: a virtio NIC hot-plugged into each (so
guests resumed from the saved booted state, which has none, can have one), joined by a QEMU socket netdev
over the host's loopback -- one guest listens, the other connects. Nothing else is on that wire."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from testbed.machine import Machine, MachineError


@dataclass(frozen=True)
class Link:
    address: dict[int, str]  # id(machine) -> its IPv4 address on the link
    interface: dict[int, str]  # id(machine) -> its interface name in the guest

    def ip(self, m: Machine) -> str:
        return self.address[id(m)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plug(m: Machine, netdev: dict[str, object], mac: str) -> str:
    """Hot-plug a virtio NIC on `netdev`; return the interface name the guest gave it."""
    before = set(m.check("ls /sys/class/net").split())
    m.qmp("netdev_add", netdev)
    m.qmp(
        "device_add",
        {"driver": "virtio-net-pci", "netdev": netdev["id"], "mac": mac, "id": f"nic-{netdev['id']}"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = set(m.check("ls /sys/class/net").split()) - before
        if new:
            return sorted(new)[0]
        time.sleep(1)
    raise MachineError("the hot-plugged NIC did not appear in the guest within 120 s (acpiphp, virtio_net?)")


def link(a: Machine, b: Machine, *, subnet: str = "10.77.0") -> Link:
    """Join a and b: a at SUBNET.1, b at SUBNET.2, /24."""
    port = _free_port()
    ifa = _plug(a, {"type": "socket", "id": "lan0", "listen": f"127.0.0.1:{port}"}, "52:54:00:77:00:01")
    ifb = _plug(b, {"type": "socket", "id": "lan0", "connect": f"127.0.0.1:{port}"}, "52:54:00:77:00:02")
    for m, iface, host in ((a, ifa, 1), (b, ifb, 2)):
        # the image has no iproute2: busybox has the ip applet
        m.check(f"busybox ip link set {iface} up && busybox ip addr add {subnet}.{host}/24 dev {iface}")
    return Link(address={id(a): f"{subnet}.1", id(b): f"{subnet}.2"}, interface={id(a): ifa, id(b): ifb})


def wait_for_port(m: Machine, ip: str, port: int, timeout: int = 180) -> None:
    """From inside m, until a TCP connection to ip:port succeeds (bash's /dev/tcp; the image has no ping)."""
    m.check(
        f"timeout {timeout} bash -c 'until echo > /dev/tcp/{ip}/{port}; do sleep 1; done' 2>/dev/null",
        timeout + 30,
    )


# what an operator does once: the client's key on the server, the server's key accepted on first use
_SSH_CLIENT = """set -e
mkdir -p /root/.ssh && chmod 700 /root/.ssh
[ -f /root/.ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
printf 'Host *\\n  StrictHostKeyChecking accept-new\\n' > /root/.ssh/config
"""


def trust_ssh(client: Machine, server: Machine, server_ip: str) -> None:
    """sshd on `server` (the image has it disabled), and root on `client` let in with a key."""
    server.check("systemctl start ssh && mkdir -p /root/.ssh && chmod 700 /root/.ssh")
    client.check(_SSH_CLIENT)
    server.put_file("/root/.ssh/authorized_keys", client.check("cat /root/.ssh/id_ed25519.pub").encode())
    server.check("chmod 600 /root/.ssh/authorized_keys")
    wait_for_port(client, server_ip, 22)
    client.check(f"ssh -o BatchMode=yes root@{server_ip} true", 300)
