"""A guest booted once to its root shell and saved (RAM and device state), so that scenarios whose subject
is not the boot itself start in seconds instead of a minute.

The state is a QEMU migration into a file, taken with the guest stopped; `booted.qcow2` is the disk as that
state expects it (an overlay over the agent layer). A scenario resumes it on an overlay of its own: the
guest carries on at its root shell, as if it had just booted. Keyed by the agent layer, the QEMU version and
the code that starts and saves the guest and the scenarios' vCPUs (a resumed guest needs the same devices
as the saved one).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.agent import AgentLayer
from testbed.cache import Artifact, artifact, building, key_of, source_of, stage_log
from testbed.machine import BOOT_TIMEOUT, Machine, scenario_cpus
from testbed.run import retrying, run, say


@dataclass(frozen=True)
class BootedState:
    disk: Path
    state: Path
    artifact: Artifact


def build_booted(layer: AgentLayer) -> BootedState:
    qemu = run(["qemu-system-x86_64", "--version"]).splitlines()[0]
    cpus = scenario_cpus()  # a resumed guest keeps the vCPUs it was saved with: the scenarios' number
    key = key_of(
        source_of(
            build_booted,
            Machine.start,
            Machine.save_state,
            Machine.wait_for_boot,
            Machine._setup_shell,
            Machine._wait_for_startup,
        ),
        layer.artifact.key,
        qemu,
        f"cpus={cpus}",
    )
    art = artifact("booted", key)
    if not art.done:
        started = time.monotonic()
        with building(art) as tmp:
            disk = tmp / "booted.qcow2"

            def attempt(number: int) -> None:
                disk.unlink(missing_ok=True)
                shutil.rmtree(tmp / "vm", ignore_errors=True)
                run(
                    [
                        "qemu-img",
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-b",
                        str(layer.disk),
                        "-F",
                        "qcow2",
                        str(disk),
                    ]
                )
                machine = Machine(layer.disk, tmp / "vm", overlay=disk, smp=cpus)
                try:
                    machine.start()
                    machine.wait_for_boot(BOOT_TIMEOUT * number)
                    machine.check("sync", timeout=120 * number)
                    machine.save_state(tmp / "state", timeout=600 * number)
                finally:
                    machine.close()
                    shutil.copyfile(machine.log_path, stage_log("booted-console"))

            retrying("the guest booted to save its state", attempt)
            shutil.rmtree(tmp / "vm")
        say(f"booted state saved in {time.monotonic() - started:.0f} s")
    return BootedState(disk=art.path / "booted.qcow2", state=art.path / "state", artifact=art)
