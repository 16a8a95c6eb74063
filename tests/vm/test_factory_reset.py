"""The factory reset end to end on real OpenZFS, GRUB and initramfs-tools, over the serial console.

The test bed's pool has what an appliance has: boot environments, a config dataset (rpool/config), customer
data (rpool/customer/globex, marked org.bootagent:customer=on), a dataset that is nothing bootagent knows
(rpool/customer/acme: the default config names no customer datasets), the state dataset, and the factory
baseline `testbed-1` the image build sealed with `bootagent factory seal`. (No encrypted customer dataset:
the pool GRUB boots from is created with compatibility=grub2, which forbids the encryption feature; the
crypto-erase is covered by the quick tier until the test bed has the two-pool layout.)
"""

from __future__ import annotations

import json
import re
import time

import pytest

from bootagent.reset.password import make_hash
from testbed.machine import LOGIN_DONE, Machine

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

WAIT = 1200.0  # one boot through the agent and a reset, on a busy host
RECOVERY_ENTRY = 1  # GRUB: 0 default, 1 recovery menu, 2 the submenu, 3 reset keep-data, 4 reset erase-all
ERASE_ENTRY = 4
MENU = "bootagent boot menu - pool rpool"
BASELINE = "rpool/FACTORY/testbed-1"
CUSTOMERS = ("rpool/customer/globex",)
PASSWORD = "testbed-grub-pw"


def keys(m: Machine, *sequence: str) -> None:
    for key in sequence:  # one at a time, as a person on a slow line would
        m.send(key)
        time.sleep(0.7)


def running(m: Machine) -> str:
    return m.check("findmnt -n -o SOURCE /").strip()


def guid(m: Machine, dataset: str) -> str:
    return m.check(f"zfs get -H -o value guid {dataset}").strip()


def customer_sums(m: Machine) -> str:
    """sha256 of every customer file (and of the unclassified acme's), one line each, sorted."""
    return m.check("cd /srv/customer && find globex acme -type f -print0 | sort -z | xargs -0 sha256sum")


def config_sums(m: Machine, where: str = "/etc/appliance") -> str:
    return m.check(f"cd {where} && find . -type f -print0 | sort -z | xargs -0 sha256sum")


def factory_config_sums(m: Machine) -> str:
    m.check(f"mkdir -p /mnt/fc && mount -t zfs {BASELINE}/config/config@factory /mnt/fc")
    sums = config_sums(m, "/mnt/fc")
    m.check("umount /mnt/fc")
    return sums


def status(m: Machine) -> dict:  # type: ignore[type-arg]
    return json.loads(m.check("bootagent status --json -n 200"))  # type: ignore[no-any-return]


def assert_factory_root(m: Machine) -> str:
    root = running(m)
    assert root.startswith("rpool/ROOT/factory-testbed-1-"), root
    assert m.check(f"zfs get -H -o value origin {root}").strip() == f"{BASELINE}/system@factory"
    assert m.check("zpool get -H -o value bootfs rpool").strip() == root
    env = root.rsplit("/", 1)[-1]
    grubenv = m.check("grub-editenv /boot/grub/grubenv list")
    assert f"bootagent_default={env}" in grubenv
    assert "bootagent_reset=" not in grubenv.replace("bootagent_reset=\n", "")  # the request is cleared
    return root


def customise(m: Machine) -> None:
    """What happens on a machine after it leaves the factory: its config changes, and snapshots are made."""
    m.check("echo 'name=customer-site' > /etc/appliance/appliance.conf && zfs snapshot rpool/config@site")
    m.check("zfs snapshot rpool/customer/globex@mine")
    m.check("bootagent checkpoint -n before-reset -d 'a checkpoint before the reset'", 600)


@pytest.mark.boots(4)
def test_keep_data_from_the_menu_then_from_the_running_system(booted: Machine) -> None:
    m = booted
    customise(m)
    sums = customer_sums(m)
    guids = {d: guid(m, d) for d in (*CUSTOMERS, "rpool/customer/acme")}
    factory = factory_config_sums(m)
    assert config_sums(m) != factory

    # 1. the recovery menu over serial: F, the list of what goes, the typed word
    m.reboot()
    m.wait_for_grub()
    time.sleep(0.5)
    m.choose_grub_entry(RECOVERY_ENTRY)
    m.expect(MENU, 300)
    m.expect("Press any key to stop the countdown", 60)
    keys(m, "F")
    m.expect("Factory reset: keep the customer's data \\(baseline testbed-1\\)", 120)
    m.expect("Type RESET and press Enter", 60)
    keys(m, "R", "E", "S", "E", "T", "\r")
    started = time.monotonic()
    m.wait_for_boot(WAIT, grub=False)
    print(f"keep-data reset from the typed word to the root shell: {time.monotonic() - started:.0f} s")
    first = assert_factory_root(m)
    assert customer_sums(m) == sums  # every customer file, byte for byte
    assert {d: guid(m, d) for d in guids} == guids  # the very same datasets
    assert "rpool/customer/globex@mine" in m.check("zfs list -H -o name -t snapshot rpool/customer/globex")
    assert config_sums(m) == factory
    assert "rpool/config@site" not in m.check("zfs list -H -o name -t snapshot -r rpool")
    assert {"rpool/ROOT/alpha", "rpool/ROOT/beta", "rpool/ROOT/gamma"} <= set(
        m.check("zfs list -H -o name -d 1 rpool/ROOT").split()
    )  # reset.keep_environments: true
    reset = status(m)["factory_reset"]
    assert reset["count"] == 1
    # GRUB's menu was regenerated at the first good boot: the new environment has its entry
    assert f"boot environment {first.rsplit('/', 1)[-1]}" in m.check("cat /boot/grub/grub.cfg")

    # 2. from the running system, for the next boot, with --yes and --reboot
    m.check("echo 'name=changed-again' > /etc/appliance/appliance.conf")
    out = m.check("bootagent factory-reset --keep-data --yes 2>&1")
    assert "asked for: the early-boot agent carries it out at the next boot" in out
    assert "bootagent_reset=keep-data" in m.check("grub-editenv /boot/grub/grubenv list")
    m.reboot()
    m.expect("FACTORY RESET UNDER WAY", 300)  # GRUB's title: every entry carries it on
    m.expect("was asked for from the running system", WAIT)
    m.wait_for_boot(WAIT, grub=False)
    second = assert_factory_root(m)
    assert second != first
    assert customer_sums(m) == sums
    assert config_sums(m) == factory
    assert status(m)["factory_reset"]["count"] == 2
    journal = [(e["action"], e["outcome"], e["actor"]) for e in status(m)["journal"]]
    assert ("factory-reset", "ok", "agent") in journal
    assert ("factory-reset", "ok", "cli") in journal


def assert_erased(m: Machine, before: dict[str, str]) -> None:
    """The end state of an erase-all, whatever happened on the way."""
    root = assert_factory_root(m)
    assert m.check("zfs list -H -o name -d 1 rpool/ROOT").split() == ["rpool/ROOT", root]
    for dataset in CUSTOMERS:  # destroyed and re-created empty
        assert guid(m, dataset) != before[dataset], dataset
        assert m.check(f"zfs list -H -o name -t snapshot -r {dataset}").strip() == ""
    assert m.check("ls -A /srv/customer/globex").strip() == ""
    assert m.check("zfs get -H -o value org.bootagent:customer rpool/customer/globex").strip() == "on"
    # the unknown dataset is left alone; the baseline and the journal of before survive
    assert guid(m, "rpool/customer/acme") == before["rpool/customer/acme"]
    m.check("cd /srv/customer/acme && sha256sum -c --quiet SHA256SUMS")
    assert "org.bootagent.factory" in m.check(f"zfs holds -H {BASELINE}/system@factory")
    journal = status(m)["journal"]
    assert [e for e in journal if e["action"] == "checkpoint" and e["target"].endswith("@before-reset")]
    assert [e for e in journal if e["action"] == "factory-reset" and e["outcome"] == "ok"]
    assert config_sums(m) == before["config"]


def before_erase(m: Machine) -> dict[str, str]:
    customise(m)
    before = {d: guid(m, d) for d in (*CUSTOMERS, "rpool/customer/acme")}
    before["config"] = factory_config_sums(m)
    return before


@pytest.mark.boots(4)
def test_erase_all_from_its_grub_entry_behind_the_password_through_power_cuts(booted: Machine) -> None:
    """Erase-all from GRUB's entry, which asks for GRUB's superuser password over serial; the power is cut at
    three points, and every next boot -- GRUB's default entry, which asks for nothing -- carries the reset on
    until the end state is that of an uninterrupted erase-all. No half-reset system ever boots."""
    m = booted
    hashed = make_hash(PASSWORD, b"bootagent-testbed")
    m.check(
        "sed -i 's/^  password_pbkdf2: .*/  password_pbkdf2: \""
        + hashed
        + "\"/' /etc/bootagent/bootagent.yaml"
        " && update-grub 2>&1",
        300,
    )
    cfg = m.check("cat /boot/grub/grub.cfg")
    assert f"password_pbkdf2 root {hashed}" in cfg
    before = before_erase(m)

    m.reboot()
    m.wait_for_grub()
    time.sleep(0.5)
    m.choose_grub_entry(ERASE_ENTRY)
    m.expect("Enter username:", 60)
    m.sendline("root")
    m.expect("Enter password:", 60)
    m.sendline(PASSWORD)
    m.expect("Factory reset: ERASE EVERYTHING \\(baseline testbed-1\\)", 600)
    m.expect("ERASE +rpool/customer/globex", 60)  # the list of what goes, what is erased first
    m.expect("Type ERASE and press Enter", 60)
    keys(m, "E", "R", "A", "S", "E", "\r")
    cuts = [
        r"removing rpool/ROOT/\S+",  # in the middle of the first destructive step
        r"factory reset, step 4 of \d+",  # right after it (the old environments gone)
        r"factory reset, step \d+ of \d+: re-creating the customer datasets",  # customers gone, none made
    ]
    resumed: list[str] = []
    for point in cuts:
        mark = len(m.log_path.read_text(errors="replace"))
        m.expect(point, WAIT)
        m.power_cut()
        seen = m.log_path.read_text(errors="replace")[mark:]
        assert not re.search(LOGIN_DONE, seen), "a half-reset system booted"
        mark = len(m.log_path.read_text(errors="replace"))
        m.boot_again()
        m.expect("FACTORY RESET UNDER WAY", 300)  # GRUB's default entry, by itself after its timeout
        found = m.expect(r"was interrupted after step (\d+) of (\d+): carrying it on", WAIT)
        assert "Enter username" not in m.log_path.read_text(errors="replace")[mark:]
        resumed.append(f"{point} -> resumed after step {found.group(1)} of {found.group(2)}")
    print("power cuts:", *resumed, sep="\n  ")
    m.wait_for_boot(WAIT, grub=False)
    assert_erased(m, before)
    assert status(m)["factory_reset"]["count"] == 1
