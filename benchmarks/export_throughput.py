"""Export and import throughput against `zfs send | zfs receive` by hand, on the same data, between two
test-bed guests joined by the test bed's private network (ratios, medians over rounds).

    .venv/bin/python benchmarks/export_throughput.py [--rounds N] [--mib M]

An environment `web` with M MiB of incompressible data is exported whole to the second guest (the storage
host) with `bootagent export ... ssh://` and, alternately, sent by hand (`zfs send -L -e -c | ssh host zfs
receive -u`); then imported back with `bootagent import ssh://...` against `ssh host zfs send | zfs receive`
by hand. Each copy goes to a new dataset, so every round moves the same bytes (and is destroyed after its
round, so the pool holds one copy at a time). Besides the whole commands, the copy's own time (the
`--json` result's seconds) separates the rate from the fixed costs; one more export and import with
`--debug` show where the fixed costs go (every command bootagent ran, with its time). Uses the saved booted
state (it builds the image, the agent layer and the state if they are not cached).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.agent import build_agent_layer
from testbed.booted import build_booted
from testbed.build import build_image
from testbed.machine import Machine, scenario_cpus
from testbed.network import link, trust_ssh

STORE = "rpool/exports"


def timed(m: Machine, command: str) -> tuple[float, str]:
    started = time.monotonic()
    out = m.check(command, 3600)
    return time.monotonic() - started, out


def copy_seconds(out: str) -> float:
    """The copy's own seconds, from the JSON result on stdout (export: per part; import: one figure)."""
    data = json.loads(out[out.index("{") :])
    return float(sum(p["seconds"] for p in data["parts"]) if "parts" in data else data["seconds"])


RAN = re.compile(r"^\s*(\d+) ms DEBUG bootagent\.runner: ran: (\S+): exit \d+ after ([\d.]+) s", re.M)


def breakdown(what: str, whole: float, log: str) -> None:
    """Where a --debug run's time went: the commands bootagent ran (by program), and the rest."""
    by_program: dict[str, list[float]] = {}
    for _ms, program, seconds in RAN.findall(log):
        by_program.setdefault(program, []).append(float(seconds))
    ran = sum(sum(v) for v in by_program.values())
    parts = ", ".join(f"{p} x{len(v)} {sum(v):.1f} s" for p, v in sorted(by_program.items()))
    print(f"{what} with --debug: {whole:.1f} s; commands run around the copy: {parts} ({ran:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=64, help="data written into the environment (MiB)")
    args = parser.parse_args()
    booted = build_booted(build_agent_layer(build_image()))
    keys = ("export", "send by hand", "import", "receive by hand", "export's copy", "import's copy")
    results: dict[str, list[float]] = {k: [] for k in keys}
    with (
        tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp,
        Machine(booted.disk, Path(tmp) / "a", smp=scenario_cpus()) as client,
        Machine(booted.disk, Path(tmp) / "b", smp=scenario_cpus()) as host,
    ):
        client.resume(booted.state)
        host.resume(booted.state)
        net = link(host, client)
        ip = net.ip(host)
        trust_ssh(client, host, ip)
        host.check(f"zfs create -o canmount=off -o mountpoint=none {STORE}")
        client.check("bootagent create web", 600)
        client.check(
            "mkdir -p /mnt/web && mount -t zfs -o zfsutil rpool/ROOT/web /mnt/web && "
            f"head -c {args.mib}M /dev/urandom > /mnt/web/root/data.bin && umount /mnt/web && "
            "zfs snapshot rpool/ROOT/web@bench",
            900,
        )
        size = int(client.check("zfs get -H -p -o value referenced rpool/ROOT/web@bench"))
        for r in range(args.rounds):
            order = ("tool", "hand") if r % 2 == 0 else ("hand", "tool")
            for how in order:
                if how == "tool":
                    seconds, out = timed(
                        client,
                        f"bootagent export web@bench ssh://root@{ip}/{STORE} --as r{r} --machine bench "
                        "--json 2>/dev/null",
                    )
                    results["export"].append(seconds)
                    results["export's copy"].append(copy_seconds(out))
                else:
                    seconds, _ = timed(
                        client,
                        f"zfs send -L -e -c rpool/ROOT/web@bench | "
                        f"ssh -o BatchMode=yes root@{ip} zfs receive -u {STORE}/hand{r}",
                    )
                    results["send by hand"].append(seconds)
            for how in order:
                if how == "tool":
                    seconds, out = timed(
                        client,
                        f"bootagent import ssh://root@{ip}/{STORE}/bench/r{r} --name imp{r} "
                        "--json 2>/dev/null",
                    )
                    results["import"].append(seconds)
                    results["import's copy"].append(copy_seconds(out))
                else:
                    seconds, _ = timed(
                        client,
                        f"ssh -o BatchMode=yes root@{ip} zfs send -L -e -c {STORE}/hand{r}@bench | "
                        f"zfs receive -u -o canmount=noauto -o mountpoint=/ rpool/ROOT/man{r}",
                    )
                    results["receive by hand"].append(seconds)
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in results.items() if v),
                flush=True,
            )
            host.check(f"zfs destroy -r {STORE}/bench && zfs destroy -r {STORE}/hand{r}", 900)
            client.check(f"zfs destroy -r rpool/ROOT/imp{r} && zfs destroy -r rpool/ROOT/man{r}", 900)
        export_debug, log = timed(
            client,
            f"bootagent --debug export web@bench ssh://root@{ip}/{STORE} --as dbg --machine bench 2>&1",
        )
        import_debug, log2 = timed(
            client, f"bootagent --debug import ssh://root@{ip}/{STORE}/bench/dbg --name dbg 2>&1"
        )
    print()
    mib = size / 2**20
    print(f"{mib:.0f} MiB referenced, {args.rounds} rounds, {scenario_cpus()} vCPU per guest")
    for tool, hand in (("export", "send by hand"), ("import", "receive by hand")):
        a, b = statistics.median(results[tool]), statistics.median(results[hand])
        c = statistics.median(results[f"{tool}'s copy"])
        spread = f"{min(results[tool]):.1f}-{max(results[tool]):.1f}"
        hand_spread = f"{min(results[hand]):.1f}-{max(results[hand]):.1f}"
        print(
            f"{tool:<8} {mib / a:6.1f} MiB/s ({a:.1f} s, spread {spread})"
            f"   by hand {mib / b:6.1f} MiB/s ({b:.1f} s, spread {hand_spread})   time ratio {a / b:.3f}"
        )
        print(
            f"{'':<8} its copy alone {mib / c:6.1f} MiB/s ({c:.1f} s): ratio {c / b:.3f} to by hand; "
            f"fixed costs {a - c:.1f} s"
        )
    breakdown("export", export_debug, log)
    breakdown("import", import_debug, log2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
