"""`bootagent setup`'s inspection (bootagent.setup.inspect) against the output of `zpool list`, `zfs list` and
`findmnt` recorded on real machines of both layouts (tests/unit/setup/recorded/, see its README)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bootagent.config import Config, Layout
from bootagent.setup.facts import COMMANDS, SystemFacts, parse
from bootagent.setup.inspect import Setting, propose

RECORDED = Path(__file__).parent / "recorded"


def recorded(layout: str, **replaced: str) -> SystemFacts:
    outputs = {key: (RECORDED / layout / f"{key}.txt").read_text() for key in COMMANDS}
    return parse({**outputs, **replaced})


def mounts_with(layout: str, *lines: str, without: tuple[str, ...] = ()) -> str:
    kept = [
        line
        for line in (RECORDED / layout / "mounts.txt").read_text().splitlines()
        if line.split(" ")[0] not in without
    ]
    return "\n".join([*kept, *lines]) + "\n"


def test_the_recorded_outputs_parse() -> None:
    facts = recorded("testbed")
    assert facts.pools == ("rpool",)
    root = facts.mounted_at("/")
    assert root is not None
    assert (root.source, root.fstype) == ("rpool/ROOT/beta", "zfs")
    beta = facts.dataset("rpool/ROOT/beta")
    assert beta is not None
    assert (beta.mountpoint, beta.canmount, beta.encryption) == ("/", "noauto", "off")
    howto = recorded("howto")
    assert set(howto.pools) == {"bpool", "rpool"}
    ds = howto.dataset("rpool/ROOT/debian")
    assert ds is not None
    assert (ds.encryptionroot, ds.keyformat) == ("rpool", "passphrase")


def test_the_test_beds_single_pool_layout_needs_nothing() -> None:
    """The package's defaults already fit the layout they describe: setup changes nothing."""
    proposal = propose(recorded("testbed"), Config())
    assert proposal.refusals == ()
    assert (proposal.pool, proposal.environment, proposal.boot_pool) == ("rpool", "beta", None)
    assert proposal.grubenv == "/boot/grub/grubenv"
    assert proposal.settings == ()
    assert proposal.changes_nothing
    assert "/boot is inside each environment (one pool)" in proposal.notes
    # rpool/customer/acme is mounted at /srv/acme and nothing says what it is: proposed, not decided
    assert proposal.customer_candidates == ("rpool/customer/acme",)


def test_the_howto_layout_gets_its_boot_pool_and_a_grubenv_on_the_esp() -> None:
    proposal = propose(recorded("howto"), Config(), exists=lambda _p: False)
    assert proposal.refusals == ()
    assert (proposal.pool, proposal.environment, proposal.boot_pool) == ("rpool", "debian", "bpool")
    assert [s.key for s in proposal.settings] == ["boot_pool", "grubenv"]
    assert proposal.settings[0].value == "bpool"
    assert proposal.settings[1] == Setting(
        "grubenv",
        "/boot/efi/grubenv",
        "/boot/grub/grubenv is on ZFS, which GRUB cannot write; the ESP (/dev/vda1) is FAT",
    )
    assert proposal.state_dataset == "rpool/bootagent"
    assert proposal.grubenv_missing
    assert proposal.customer_candidates == ("rpool/home",)
    assert any("the root is encrypted (encryption root rpool, key passphrase)" in n for n in proposal.notes)
    # once it is set up, a second look proposes nothing
    done = replace(Config(), boot_pool="bpool", grubenv="/boot/efi/grubenv", customer_datasets=("home",))
    facts = recorded("howto")
    facts = replace(facts, datasets=(*facts.datasets, replace(facts.datasets[0], name="rpool/bootagent")))
    again = propose(facts, done, exists=lambda _p: True)
    assert again.changes_nothing
    assert again.customer_candidates == ()


def test_a_container_of_another_name_is_written_to_the_layout() -> None:
    facts = recorded("howto")
    facts = replace(
        facts,
        mounts=tuple(replace(m, source="rpool/OS/debian") if m.target == "/" else m for m in facts.mounts),
    )
    proposal = propose(facts, Config())
    assert Setting("layout.root", "OS", "the running root is rpool/OS/debian") in proposal.settings


@pytest.mark.parametrize(
    ("mounts", "reason"),
    [
        (
            mounts_with("testbed", "/ /dev/vda1 ext4 1234", without=("/",)),
            "the root file system is not on ZFS (ext4 on /dev/vda1)",
        ),
        (
            mounts_with("testbed", "/ rpool/debian zfs -", without=("/",)),
            "the root dataset rpool/debian is not <pool>/<container>/<name>",
        ),
        (
            mounts_with("testbed", "/boot /dev/vda4 ext4 9999"),
            "/boot is a file system of its own (ext4 on /dev/vda4), shared by every environment",
        ),
        (
            mounts_with("howto", "/boot bpool/BOOT/other zfs -", without=("/boot",)),
            "the two halves of an environment must have the same name",
        ),
        (
            mounts_with("howto", without=("/boot/efi",)),
            "GRUB can write its environment block only on ext4 or FAT",
        ),
    ],
)
def test_a_layout_it_cannot_serve_is_refused_with_the_reason(mounts: str, reason: str) -> None:
    layout = "howto" if "bpool" in mounts else "testbed"
    proposal = propose(recorded(layout, mounts=mounts), Config())
    assert len(proposal.refusals) == 1
    assert reason in proposal.refusals[0]
    assert proposal.changes_nothing


def test_datasets_known_as_customer_data_are_not_proposed_again() -> None:
    facts = recorded("testbed")
    assert propose(facts, Config(customer_datasets=("customer/acme",))).customer_candidates == ()
    assert propose(facts, Config(layout=Layout(root="ROOT"))).environment == "beta"


def test_a_boot_pool_named_in_the_config_that_is_not_there_goes_back_to_auto() -> None:
    proposal = propose(recorded("testbed"), Config(boot_pool="bpool"))
    assert proposal.settings == (
        Setting("boot_pool", "auto", "the config names bpool, but /boot is not on it"),
    )


def test_an_encrypted_root_pool_is_said_to_encrypt_the_new_state_dataset() -> None:
    proposal = propose(recorded("howto"), Config())
    assert any(n.startswith("rpool/bootagent inherits rpool's encryption") for n in proposal.notes)
