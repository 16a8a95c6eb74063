"""The package's systemd units: valid for systemd itself (`systemd-analyze verify`), installable (an [Install]
section, so the postinst's enable does something), and wired the way systemd's boot assessment expects --
the failure mode the field knows best is a counter that nothing clears."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ("bootagent-boot-start.service", "bootagent-health.service", "bootagent-bless.service")
PRUNE = ("bootagent-prune.service", "bootagent-prune.timer")  # retention, daily
TEXTFILE = ("bootagent-textfile.service", "bootagent-textfile.timer")  # node_exporter's metrics
ENABLED = (*NAMES, "bootagent-prune.timer", "bootagent-textfile.timer")  # what the postinst enables


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def words(parser: configparser.ConfigParser, section: str, key: str) -> set[str]:
    return set(parser.get(section, key, fallback="").split())


def test_the_units_are_the_ones_the_package_enables() -> None:
    assert sorted(p.name for p in UNITS.glob("bootagent-*")) == sorted((*NAMES, *PRUNE, *TEXTFILE))
    script = (Path(__file__).resolve().parents[2] / "packaging/build-deb.sh").read_text()
    joined = script.replace("\\\n", " ")
    loops = [line for line in joined.splitlines() if line.strip().startswith("for unit in")]
    assert len(loops) == 2  # postinst: enable; postrm: mask or purge
    for loop in loops:
        assert set(loop.split(";")[0].split()[3:]) == set(ENABLED), loop
    assert script.count("deb-systemd-helper enable") == 1


def test_the_prune_timer_runs_the_prune_daily_and_catches_up() -> None:
    timer = unit("bootagent-prune.timer")
    assert timer.get("Timer", "OnCalendar") == "daily"
    assert timer.get("Timer", "Persistent") == "true"
    assert words(timer, "Install", "WantedBy") == {"timers.target"}
    service = unit("bootagent-prune.service")
    assert service.get("Service", "ExecStart") == "/usr/sbin/bootagent prune"
    assert service.get("Service", "Type") == "oneshot"
    assert not service.has_section("Install")  # only the timer starts it


def test_the_textfile_timer_writes_where_node_exporter_reads_and_only_there() -> None:
    service = unit("bootagent-textfile.service")
    directory = "/var/lib/prometheus/node-exporter"  # Debian's prometheus-node-exporter
    assert service.get("Unit", "ConditionPathIsDirectory") == directory
    argv = service.get("Service", "ExecStart").split()
    assert argv[:3] == ["/usr/sbin/bootagent", "status", "--textfile"]
    assert argv[3].startswith(directory + "/")
    assert argv[3].endswith(".prom")
    timer = unit("bootagent-textfile.timer")
    assert timer.get("Timer", "OnUnitActiveSec") == "5min"
    assert words(timer, "Install", "WantedBy") == {"timers.target"}


@pytest.mark.subprocess
def test_systemd_analyze_verify_accepts_them(tmp_path: Path) -> None:
    """Verified against this host's systemd units; only the binary's path is pointed at a stub, since
    systemd-analyze insists that ExecStart= exists."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze (systemd) is on every Debian host"
    stub = tmp_path / "bootagent"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in (*NAMES, *PRUNE, *TEXTFILE):
        text = (UNITS / name).read_text().replace("/usr/sbin/bootagent", str(stub))
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [tool, "verify", "--man=no", *(str(tmp_path / n) for n in (*NAMES, *PRUNE, *TEXTFILE))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_health_checks_come_before_boot_complete_and_can_stop_it() -> None:
    health = unit("bootagent-health.service")
    assert "boot-complete.target" in words(health, "Unit", "Before")
    assert "boot-complete.target" in words(health, "Install", "RequiredBy")
    assert health.get("Service", "Type") == "oneshot"
    assert health.get("Service", "ExecStart") == "/usr/sbin/bootagent health"


def test_bless_needs_boot_complete_and_is_pulled_into_every_boot() -> None:
    bless = unit("bootagent-bless.service")
    assert "boot-complete.target" in words(bless, "Unit", "Requires")
    assert "boot-complete.target" in words(bless, "Unit", "After")
    assert "multi-user.target" in words(bless, "Install", "WantedBy")
    assert "/boot/grub" in words(bless, "Unit", "RequiresMountsFor")  # grubenv is on GRUB's partition
    assert bless.get("Service", "ExecStart") == "/usr/sbin/bootagent bless"


def test_boot_start_runs_early_once_the_file_systems_are_there() -> None:
    start = unit("bootagent-boot-start.service")
    assert start.get("Unit", "DefaultDependencies") == "no"
    assert {"local-fs.target", "zfs-mount.service"} <= words(start, "Unit", "After")
    assert "/boot/grub" in words(start, "Unit", "RequiresMountsFor")
    assert "sysinit.target" in words(start, "Install", "WantedBy")


def _install(units: Path, stub: Path) -> None:
    """The units as `systemctl enable` leaves them: copied, with .wants/.requires links from [Install]."""
    for name in NAMES:
        (units / name).write_text((UNITS / name).read_text().replace("/usr/sbin/bootagent", str(stub)))
        parsed = unit(name)
        for key, suffix in (("WantedBy", "wants"), ("RequiredBy", "requires")):
            for target in words(parsed, "Install", key):
                link = units / f"{target}.{suffix}" / name
                link.parent.mkdir(exist_ok=True)
                link.symlink_to(units / name)


@pytest.mark.subprocess
def test_enabled_they_make_no_ordering_cycle_in_a_boot(tmp_path: Path) -> None:
    """A target is ordered after what it wants: a bless unit after boot-complete.target, pulled in by
    multi-user.target, with health checks after multi-user.target, is a cycle systemd breaks by dropping
    a job -- the VM once booted with bless skipped ("Ordering cycle found, skipping"). The boot's
    transaction is built here from the host's units plus ours, enabled."""
    stub = tmp_path / "bootagent"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    _install(units, stub)
    done = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            "multi-user.target",
            "sysinit.target",
            "boot-complete.target",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    out = done.stdout + done.stderr
    assert "cycle" not in out.lower(), out
    assert "bootagent" not in out, out
    assert done.returncode == 0, out
