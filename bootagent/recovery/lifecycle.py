"""Boot counting on the running system: boot-start (early), health (before boot-complete.target) and bless
(after it). Each is a `bootagent` verb run by a systemd unit of the package (systemd/).

- boot-start re-arms counting on every boot: a grubenv that is missing, damaged or holds a garbled counter is
  written again (this boot counts as an attempt: GRUB could not count it), the hardware watchdog gets the
  boot deadline, and this boot's record is started.
- health runs the check scripts; a failed required check fails the boot (no bless) and, by default, reboots
  at once so the next attempt -- or the recovery ladder -- comes sooner.
- bless records a good boot: the environment's last-good time, the counter back to 0, the ladder (if one
  brought the machine here) ended and reported, the fallback made the default, the watchdog stopped.

The order of bless's writes is chosen for power cuts: the counter is cleared (with the new default, in one
write of the block) before the ladder is ended, so a cut in between leaves a boot that counts normally and a
ladder that the next good boot ends; never a cleared ladder with a counter still at the limit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootagent.bootstate import BootStore
from bootagent.config import CheckFailure, Config
from bootagent.environments import BootEnvironments, running_environment
from bootagent.errors import BootagentError, ExitCode, RefusedError
from bootagent.journal import Journal, Outcome
from bootagent.model import Prop
from bootagent.recovery import health, watchdog
from bootagent.recovery.counter import BootCount, parse_tries
from bootagent.recovery.ladder import Recovered, after_good_boot
from bootagent.recovery.store import BootRecord, RecoveryStore
from bootagent.runner import Runner

LOG = logging.getLogger(__name__)

BOOT_ID = "/proc/sys/kernel/random/boot_id"
MOTD = "/run/motd.d/bootagent"


class HealthFailed(BootagentError):
    """A required health check failed: the boot is not good."""

    exit_code = ExitCode.UNHEALTHY


def read_boot_id(path: str = BOOT_ID) -> str:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return uuid.uuid4().hex


@dataclass
class Watchdog:
    """The watchdog operations (the real device by default; tests give their own)."""

    arm: Callable[[int], str] = field(default=watchdog.arm)
    disarm: Callable[[], str] = field(default=watchdog.disarm)
    present: Callable[[], bool] = field(default=lambda: watchdog.info() is not None)


@dataclass
class RunningSystem:
    config: Config
    pool: str
    envs: BootEnvironments
    boot: BootStore
    journal: Journal
    store: RecoveryStore
    runner: Runner
    watchdog: Watchdog = field(default_factory=Watchdog)
    checks_dir: str = health.CHECKS_DIR
    motd: str = MOTD
    boot_id: Callable[[], str] = read_boot_id
    clock: Callable[[], float] = time.time
    say: Callable[[str], None] = lambda _m: None  # what is done (the journal)
    warn: Callable[[str], None] = lambda _m: None  # what went wrong (the journal and the console)

    def running(self) -> str:
        """The running environment's name, from the mount table alone (no listing: every boot asks)."""
        root = self.config.root_container(self.pool)
        name = running_environment(root, self.envs.zfs.mounts())
        if name is None:
            raise RefusedError(
                "the running root is not a boot environment of this pool",
                hint=f"boot counting applies to environments under {root}",
            )
        return name

    def record(self) -> BootRecord | None:
        """This boot's record (None: boot-start has not run in this boot)."""
        record = self.store.boot()
        return record if record is not None and record.boot_id == self.boot_id() else None


# --- boot-start ----------------------------------------------------------------------------------------
def boot_start(system: RunningSystem) -> BootRecord:
    env = system.running()
    raw, sound = system.boot.counter()
    tries = parse_tries(raw)
    repaired = ""
    if not system.boot.grubenv.path.exists():
        repaired = f"{system.boot.grubenv.path} was missing"
    elif not sound:
        repaired = f"{system.boot.grubenv.path} was damaged"
    elif tries is None:
        repaired = "the boot counter was " + ("missing" if raw is None else "garbled")
    if repaired:
        # GRUB could not count this boot: it counts now, so a failing boot still moves towards the limit
        active = system.envs.inventory().state.active
        tries = 1
        system.boot.set_counter("1", default=active if not sound else None)
        message = f"{repaired}: written again, with this boot counted as attempt 1; counting goes on"
        system.journal.record("boot-counter", env, Outcome.OK, detail=message)
        system.warn(message)
    record = BootRecord(
        boot_id=system.boot_id(), environment=env, started=int(system.clock()), tries=tries, repaired=repaired
    )
    system.store.save_boot(record)
    system.say(BootCount(str(tries), system.config.recovery.boot_count_limit).describe())
    seconds = system.config.recovery.boot_timeout
    if seconds > 0:
        if not system.watchdog.present():  # its driver may still be loading (udev's coldplug)
            system.runner(["udevadm", "settle", "--timeout=15"], check=False, timeout=30)
        try:
            system.say(system.watchdog.arm(seconds))
        except watchdog.WatchdogError as exc:
            system.warn(f"warning: {exc}")
    return record


# --- health --------------------------------------------------------------------------------------------
def run_health(system: RunningSystem) -> health.HealthReport:
    env = system.running()
    report = health.run_checks(system.runner, system.checks_dir, say=system.say, warn=system.warn)
    record = system.record() or BootRecord(
        boot_id=system.boot_id(), environment=env, started=int(system.clock()), tries=None
    )
    record = replace(
        record,
        health="passed" if report.passed else "failed",
        failed_required=report.failed_required,
        failed_wanted=report.failed_wanted,
    )
    system.store.save_boot(record)
    summary = health.summary(report)
    (system.say if report.passed else system.warn)(summary)
    if report.passed:
        if report.failed_wanted:
            system.journal.record("health", env, Outcome.OK, detail=summary)
        return report
    system.journal.record("health", env, Outcome.FAILED, detail=summary)
    reboot = system.config.recovery.required_check_failure is CheckFailure.REBOOT
    message = f"this boot of {env} failed: {record.reason}"
    if reboot:
        system.warn(f"{message}; rebooting now (recovery.required_check_failure: reboot)")
        system.runner(["systemctl", "reboot", "--no-block"], check=False, timeout=60)
    else:
        system.warn(f"{message}; the system stays up, not blessed (recovery.required_check_failure: wait)")
    raise HealthFailed(message, hint="see 'journalctl -u bootagent-health.service'")


# --- bless ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blessed:
    environment: str
    recovered: Recovered | None
    made_default: bool
    watchdog: str


def bless(system: RunningSystem) -> Blessed:
    env_name = system.running()
    record = system.record()
    if record is not None and record.health == "failed":
        raise RefusedError(
            f"this boot failed its required health checks ({record.reason}); it is not blessed",
            hint="fix what the check found and reboot (see 'journalctl -u bootagent-health.service')",
        )
    ladder = system.store.ladder()
    now = int(system.clock())
    recovered = after_good_boot(ladder, env_name, now)
    system.envs.resume_pending()  # what a cut left pending is finished before the one listing
    inv = system.envs.inventory()
    env = inv.find(env_name)
    make_default = recovered is not None and inv.state.active != env_name
    data = {"dataset": env.dataset, "default": "yes" if make_default else "no"}
    detail = recovered.describe() if recovered else ""
    system.envs.record_good(inv, env)  # mark-good: its own journalled step
    with system.journal.operation("bless", env_name, detail=detail, data=data):
        if env.failed:
            system.envs.zfs.inherit_user(env.dataset, Prop.FAILED.value)
        system.boot.set_counter("0", default=env_name if make_default else None)
        if make_default:
            system.envs.zfs.set_bootfs(system.pool, env.dataset)
        if ladder.active:
            system.store.end_ladder(recovered)
    stopped = ""
    try:
        stopped = system.watchdog.disarm()
    except watchdog.WatchdogError as exc:
        LOG.error("%s", exc)
        stopped = f"warning: {exc}"
    if recovered is not None:
        system.warn(recovered.describe())
        write_motd(system.motd, recovered.describe())
    return Blessed(env_name, recovered, make_default, stopped)


def write_motd(path: str, message: str) -> None:
    """The login message of this boot (a file under /run: gone at the next boot)."""
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            f"bootagent: {message}.\nbootagent: 'bootagent status' says more.\n", encoding="utf-8"
        )
    except OSError as exc:
        LOG.warning("cannot write the login message %s: %s", path, exc)
