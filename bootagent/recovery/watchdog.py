"""The hardware watchdog as a boot deadline: armed early in the real root with the configured time and never
fed, disarmed by the bless unit. A boot that hangs anywhere -- a unit that never finishes, a wedged kernel --
is reset by the hardware, and GRUB counts the attempt.

Linux's watchdog API: opening the device starts the timer; WDIOC_SETTIMEOUT sets it; closing after writing
the magic character "V" stops it, closing without it leaves it running ("watchdog did not stop!"). A driver
with `nowayout` can never be stopped: bootagent then does not arm it (a good boot could not disarm it).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)

DEVICE = "/dev/watchdog0"
SYSFS = "/sys/class/watchdog"
WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
WDIOC_KEEPALIVE = 0x80045705  # _IOR('W', 5, int)


@dataclass(frozen=True)
class WatchdogInfo:
    device: str
    identity: str
    max_timeout: int | None
    nowayout: bool


def info(device: str = DEVICE, sysfs: str = SYSFS) -> WatchdogInfo | None:
    """The watchdog, or None when there is none."""
    if not os.path.exists(device):
        return None
    base = Path(sysfs) / os.path.basename(device)

    def read(name: str) -> str:
        try:
            return (base / name).read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return ""

    max_timeout = read("max_timeout")
    return WatchdogInfo(
        device=device,
        identity=read("identity") or "unknown",
        max_timeout=int(max_timeout) if max_timeout.isdigit() else None,
        nowayout=read("nowayout") == "1",
    )


class WatchdogError(Exception):
    pass


def arm(seconds: int, device: str = DEVICE, sysfs: str = SYSFS) -> str:
    """Start the watchdog with `seconds` and leave it running. Returns what was done, in words."""
    dog = info(device, sysfs)
    if dog is None:
        raise WatchdogError(f"no watchdog device ({device}): a hung boot is not reset")
    if dog.nowayout:
        raise WatchdogError(f"{device} ({dog.identity}) cannot be stopped once started (nowayout); not armed")
    timeout = seconds
    if dog.max_timeout and timeout > dog.max_timeout:
        LOG.warning("%s allows at most %d s; using that instead of %d s", device, dog.max_timeout, seconds)
        timeout = dog.max_timeout
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        hint = (
            " (another program, e.g. systemd's RuntimeWatchdogSec, holds it)"
            if exc.errno == errno.EBUSY
            else ""
        )
        raise WatchdogError(f"cannot open {device}: {exc.strerror}{hint}") from exc
    try:
        fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", timeout))
        fcntl.ioctl(fd, WDIOC_KEEPALIVE, struct.pack("i", 0))
    except OSError as exc:
        os.write(fd, b"V")  # could not set our time: stop it rather than leave the driver's default
        os.close(fd)
        raise WatchdogError(f"cannot set the timeout of {device}: {exc.strerror}") from exc
    os.close(fd)  # without "V": it keeps running
    return (
        f"{device} ({dog.identity}) armed: the machine is reset unless this boot is good within {timeout} s"
    )


def disarm(device: str = DEVICE, sysfs: str = SYSFS) -> str:
    dog = info(device, sysfs)
    if dog is None:
        return "no watchdog device"
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise WatchdogError(f"cannot open {device}: {exc.strerror}") from exc
    try:
        os.write(fd, b"V")
    finally:
        os.close(fd)
    return f"{device} ({dog.identity}) stopped"
