"""Unattended recovery end to end, nobody touching the console: GRUB counts every attempt of the default
path, a failed required health check, a kernel that panics and a boot that hangs (the hardware watchdog) are
each one failed attempt, and at the limit the agent falls back to the last-known-good environment by itself
-- or, with nothing good left, stops at the manual-intervention screen and stays there."""

from __future__ import annotations

import json
import re
import time

import pytest

from testbed.layout import POOL, be_dataset
from testbed.machine import Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

LIMIT = 2  # the scenarios' own setting, as an administrator would set it: recovery.boot_count_limit
WAIT = 900.0  # for one unattended boot on a busy host


def set_limit(m: Machine, limit: int) -> None:
    """recovery.boot_count_limit in the running environment's config; GRUB's counting code comes from it."""
    m.check(
        f"sed -i 's/^  boot_count_limit: .*/  boot_count_limit: {limit}/' /etc/bootagent/bootagent.yaml"
        " && update-grub 2>&1"
    )
    cfg = m.check("cat /boot/grub/grub.cfg")
    assert f"regexp '^({limit}|" in cfg


def new_environment(m: Machine, name: str, setup: str) -> None:
    """A clone of the running environment, changed by `setup` (shell, $R is its root)."""
    m.check(f"bootagent create {name}", 600)
    m.check(
        f"mkdir -p /mnt/{name} && mount -t zfs -o zfsutil {be_dataset(name)} /mnt/{name} && "
        f"R=/mnt/{name}; {setup}; umount /mnt/{name}"
    )


FAILING_CHECK = (
    "mkdir -p $R/etc/bootagent/health.d/required && "
    "printf '#!/bin/sh\\necho web is down >&2\\nexit 1\\n' > $R/etc/bootagent/health.d/required/web.sh && "
    "chmod 755 $R/etc/bootagent/health.d/required/web.sh"
)


def attempts(m: Machine, since: int, env: str) -> list[int]:
    """The attempts of `env` GRUB counted in the console log from offset `since`."""
    text = m.log_path.read_text(errors="replace")[since:]
    return [
        int(n) for n in re.findall(rf"bootagent: loading {re.escape(POOL)}/\S+/{env} \(attempt (\d+)\)", text)
    ]


def log_size(m: Machine) -> int:
    return len(m.log_path.read_text(errors="replace"))


def status(m: Machine) -> dict:  # type: ignore[type-arg]
    return json.loads(m.check("bootagent status --json -n 50"))  # type: ignore[no-any-return]


def running(m: Machine) -> str:
    return m.check("findmnt -n -o SOURCE /").strip()


def fall_back_to_beta(m: Machine, failing: str, *, expect_reason: str | None) -> None:
    """`failing` fails LIMIT times by itself; the next boot is the agent's, which boots beta."""
    for attempt in range(1, LIMIT + 1):
        m.expect(rf"loading {POOL}/\S+/{failing} \(attempt {attempt}\)", WAIT)
    m.expect(rf"attempt {LIMIT + 1}: unattended recovery of {POOL}/\S+/{failing}", WAIT)
    m.expect(r"booting beta, the last-known-good environment", WAIT)
    m.wait_for_boot(WAIT, grub=False)
    assert running(m) == be_dataset("beta")
    counting = status(m)["boot_counting"]
    assert counting["tries"] == 0
    assert counting["ladder"] is None
    summary = counting["last_recovery"]["summary"]
    expected = f"this boot is a fallback to beta after {LIMIT} failed boots of {failing}"
    if expect_reason:
        expected += f" ({expect_reason})"
    assert summary == expected
    # said where an operator looks: the login message, the journal of the running system, status
    assert expected in m.check("cat /run/motd.d/bootagent")
    assert expected in m.check("journalctl -b -u bootagent-bless.service --no-pager -o cat")
    assert "last recovery:" in m.check("bootagent status")
    # the fallback is the default now, and the failed environment is marked and never chosen by itself
    assert m.check(f"zpool get -H -o value bootfs {POOL}").strip() == be_dataset("beta")
    assert "bootagent_default=beta" in m.check("grub-editenv /boot/grub/grubenv list")
    assert m.check(f"zfs get -H -o value org.bootagent:failed {be_dataset(failing)}").strip() not in ("", "-")
    automatic = [(e["action"], e["target"]) for e in status(m)["journal"] if e["actor"] == "automatic"]
    assert ("recovery", "beta") in automatic


@pytest.mark.boots(3)
def test_a_failing_health_check_falls_back_to_the_last_known_good(booted: Machine) -> None:
    m = booted
    set_limit(m, LIMIT)
    new_environment(m, "gamma2", FAILING_CHECK)
    m.check("bootagent activate gamma2")
    assert status(m)["boot_counting"]["tries"] == 0  # the boot the state was saved in was blessed
    start = log_size(m)
    m.reboot()
    fall_back_to_beta(m, "gamma2", expect_reason="required check web.sh failed")
    assert attempts(m, start, "gamma2") == [1, 2]  # exactly LIMIT attempts, then the recovery
    assert "required check web.sh failed; rebooting now" in m.log_path.read_text(errors="replace")[start:]


@pytest.mark.boots(2)
def test_a_failed_trial_goes_back_to_the_default_and_one_failure_is_no_ladder(booted: Machine) -> None:
    """A one-shot trial that fails: back on the default after one attempt, and no recovery -- the good boot
    before (the one the saved state was made in) reset the counter, so one failure is one failure."""
    m = booted
    set_limit(m, LIMIT)
    assert status(m)["boot_counting"]["tries"] == 0
    new_environment(m, "trial", FAILING_CHECK)
    m.check("bootagent activate --once trial")
    start = log_size(m)
    m.reboot()
    m.expect(rf"loading {POOL}/\S+/trial \(attempt 1\)", WAIT)
    m.expect(rf"loading {POOL}/\S+/beta \(attempt 2\)", WAIT)
    m.wait_for_boot(WAIT, grub=False)
    assert running(m) == be_dataset("beta")
    assert attempts(m, start, "trial") == [1]
    assert "unattended recovery" not in m.log_path.read_text(errors="replace")[start:]
    assert status(m)["boot_counting"]["tries"] == 0


@pytest.mark.boots(3)
def test_nothing_good_left_stops_at_the_manual_intervention_screen(booted: Machine) -> None:
    m = booted
    set_limit(m, LIMIT)
    m.check("R=; " + FAILING_CHECK)  # the last-known-good environment itself breaks
    start = log_size(m)
    m.reboot()
    for attempt in range(1, LIMIT + 1):
        m.expect(rf"loading {POOL}/\S+/beta \(attempt {attempt}\)", WAIT)
    m.expect(rf"unattended recovery of {POOL}/\S+/beta", WAIT)
    m.expect(r"MANUAL INTERVENTION NEEDED", WAIT)
    m.expect(r"beta failed 2 boots in a row \(required check web.sh failed\)", 60)
    settled = log_size(m)
    time.sleep(120)
    later = m.log_path.read_text(errors="replace")[settled:]
    assert m.running
    assert "bootagent: loading" not in later  # no reboot, no GRUB
    assert "login:" not in later
    # the full menu is there for the person who comes: its journal shows what was done, by whom
    m.send("l")
    m.expect(r"automatic\s+recovery", 120)
    assert attempts(m, start, "beta") == [1, 2]


@pytest.mark.boots(6)
def test_a_kernel_panic_and_a_hang_are_counted_and_recovered(booted: Machine) -> None:
    m = booted
    set_limit(m, LIMIT)
    # an init that dies: the kernel panics before userspace and panic= reboots it
    new_environment(
        m,
        "broken",
        "rm -f $R/sbin/init && printf '#!/bin/sh\\nexit 1\\n' > $R/sbin/init && chmod 755 $R/sbin/init",
    )
    m.check("bootagent activate broken")
    start = log_size(m)
    m.reboot()
    fall_back_to_beta(m, "broken", expect_reason="it never reached the real root")
    assert attempts(m, start, "broken") == [1, 2]
    assert m.log_path.read_text(errors="replace")[start:].count("Kernel panic - not syncing") == 2

    # a boot that hangs before boot-complete.target: the hardware watchdog (armed by bootagent-boot-start
    # with this environment's recovery.boot_timeout) resets the machine, and GRUB counts the attempt
    hang_unit = (
        "[Unit]\\nDescription=hangs forever\\nBefore=bootagent-health.service\\n"
        "[Service]\\nType=oneshot\\nExecStart=/bin/sleep infinity\\nTimeoutStartSec=infinity\\n"
        "[Install]\\nWantedBy=multi-user.target\\n"
    )
    new_environment(
        m,
        "hangs",
        f"printf '{hang_unit}' > $R/etc/systemd/system/hang.service && "
        "ln -s /etc/systemd/system/hang.service "
        "$R/etc/systemd/system/multi-user.target.wants/hang.service && "
        "sed -i 's/^  boot_timeout: .*/  boot_timeout: 60/' $R/etc/bootagent/bootagent.yaml",
    )
    m.check("bootagent activate hangs")
    start = log_size(m)
    m.reboot()
    fall_back_to_beta(m, "hangs", expect_reason="it did not reach its health checks")
    assert attempts(m, start, "hangs") == [1, 2]
    # each hung boot ended by the hardware: no shutdown, no panic between one attempt and the next
    hung = m.log_path.read_text(errors="replace")[start:]
    first = re.search(rf"loading {POOL}/\S+/hangs \(attempt 1\)", hung)
    second = re.search(rf"loading {POOL}/\S+/hangs \(attempt 2\)", hung)
    assert first is not None
    assert second is not None
    between = hung[first.end() : second.start()]
    assert "watchdog did not stop!" in between  # armed by bootagent-boot-start, and left running
    assert "reboot: Restarting system" not in between
    assert "Kernel panic" not in between


@pytest.mark.boots(4)
def test_a_missing_or_corrupt_grubenv_and_a_power_cut_in_bless(booted: Machine) -> None:
    from tests.vm.test_cli_power_cut import cut_after_intent

    m = booted
    # no grubenv at all: GRUB boots the default it was built with, the boot is counted by boot-start
    # (GRUB could not), and counting goes on from there
    m.check("rm /boot/grub/grubenv && sync")
    start = log_size(m)
    m.reboot()
    m.wait_for_boot(WAIT)
    assert attempts(m, start, "beta") == [1]
    counting = status(m)["boot_counting"]
    assert "grubenv was missing" in counting["this_boot"]["repaired"]
    assert counting["tries"] == 0  # and blessed
    env = m.check("grub-editenv /boot/grub/grubenv list").split()
    assert "bootagent_tries=0" in env
    assert "bootagent_default=beta" in env

    # garbage in it: GRUB cannot read it and counts one attempt; boot-start keeps the damaged block and
    # writes a sound one
    m.check("head -c 1024 /dev/urandom > /boot/grub/grubenv && sync")
    start = log_size(m)
    m.reboot()
    m.wait_for_boot(WAIT)
    assert attempts(m, start, "beta") == [1]
    counting = status(m)["boot_counting"]
    assert "grubenv was damaged" in counting["this_boot"]["repaired"]
    assert counting["tries"] == 0
    assert m.check("ls /boot/grub/ | grep -c '^grubenv.damaged-'").strip() == "1"

    # a power cut while bless writes: the next boot is counted or blessed, never lost, and the cut bless
    # is closed by the next change
    m.check("systemctl mask bootagent-bless.service")
    m.reboot()
    m.wait_for_boot(WAIT)
    assert status(m)["boot_counting"]["tries"] == 1  # counted, nobody blessed
    m.check("systemctl unmask bootagent-bless.service")
    cut_after_intent(m, "bootagent bless", "bless")
    start = log_size(m)
    m.boot_again()
    m.wait_for_boot(WAIT)
    assert attempts(m, start, "beta") in ([1], [2])  # blessed before the cut, or not yet: both are sound
    after = status(m)
    assert after["grubenv_damaged"] is False
    assert m.check("ls /boot/grub/ | grep -c '^grubenv.damaged-'").strip() == "1"  # no new damage
    assert after["boot_counting"]["tries"] == 0
    assert after["pending"] == []
    cut = [e for e in after["journal"] if e["action"] == "bless" and e["outcome"] == "failed"]
    if cut:  # the plug came while it ran: closed by the next change
        assert "cut short" in cut[0]["detail"]
    # else the plug came after it had written its outcome too (a bless takes well under a second; seen on a
    # busy day): nothing was left open, which `pending == []` above has checked
