"""apt's Pre-Install-Pkgs protocol: versions 3, 2 and 1, and lines nobody expected."""

from __future__ import annotations

from bootagent.apt.protocol import Change, PackageChange, describe, parse

V3 = """VERSION 3
APT::Architecture=amd64
DPkg::Tools::Options::/usr/sbin/bootagent::Version=3
quiet=0

hello - - none < 2.10-3 amd64 same /var/cache/apt/archives/hello_2.10-3_amd64.deb
libc6 2.36-9 amd64 same < 2.36-9+deb12u4 amd64 same /var/cache/apt/archives/libc6_2.36-9+deb12u4_amd64.deb
tzdata 2024a-0 all foreign = 2024a-0 all foreign /var/cache/apt/archives/tzdata_2024a-0_all.deb
nano 7.2-1 amd64 none > 7.1-1 amd64 none /var/cache/apt/archives/nano_7.1-1_amd64.deb
libfoo1 - - none < 1.0 i386 same /var/cache/apt/archives/libfoo1_1.0_i386.deb
cowsay 3.03 all none < - - none **REMOVE**
hello - - none < 2.10-3 amd64 same **CONFIGURE**
"""


def test_version_3_names_every_change_once() -> None:
    got = parse(V3.splitlines(keepends=True))
    assert got.version == 3
    assert got.problems == ()
    assert got.changes == (
        PackageChange("hello", Change.INSTALL, None, "2.10-3"),
        PackageChange("libc6", Change.UPGRADE, "2.36-9", "2.36-9+deb12u4"),
        PackageChange("tzdata", Change.REINSTALL, "2024a-0", "2024a-0"),
        PackageChange("nano", Change.DOWNGRADE, "7.2-1", "7.1-1"),
        PackageChange("libfoo1:i386", Change.INSTALL, None, "1.0"),
        PackageChange("cowsay", Change.REMOVE, "3.03", None),
    )


def test_version_2_and_1() -> None:
    v2 = parse(["VERSION 2\n", "a=b\n", "\n", "hello - < 2.10-3 /x/hello_2.10-3_amd64.deb\n"])
    assert v2.changes == (PackageChange("hello", Change.INSTALL, None, "2.10-3"),)
    v1 = parse(["/var/cache/apt/archives/bash_5.2.15-2%3a1_amd64.deb\n"])
    assert v1.version == 1
    assert v1.changes == (PackageChange("bash", Change.INSTALL, None, "5.2.15-2:1"),)


def test_lines_nobody_expected_are_noted_not_fatal() -> None:
    got = parse(["VERSION 3\n", "\n", "only three fields\n", "\x00\xff junk\n", "\n"])
    assert got.changes == ()
    assert len(got.problems) == 2
    assert parse([]).changes == ()
    assert parse(["VERSION x\n"]).changes == ()  # a header without its configuration dump


def test_a_configure_only_line_is_kept_when_nothing_else_names_the_package() -> None:
    got = parse(["VERSION 3\n", "\n", "vim 9.0 amd64 none < 9.0 amd64 none **CONFIGURE**\n"])
    assert got.changes == (PackageChange("vim:amd64", Change.CONFIGURE, "9.0", "9.0"),)


def test_the_description_fits_and_says_how_many_more() -> None:
    changes = parse(V3.splitlines()).changes
    assert describe(changes[:1], 200) == "apt: install hello 2.10-3"
    text = describe(changes, 200)
    assert text.startswith("apt: install hello 2.10-3, upgrade libc6 2.36-9 -> 2.36-9+deb12u4")
    assert "remove cowsay 3.03" in text
    many = [PackageChange(f"package-{n}", Change.UPGRADE, "1.0", "1.1") for n in range(100)]
    short = describe(many, 120)
    assert len(short) <= 120
    assert short.endswith(" more")
    shown = short.count("package-")
    assert short.endswith(f" and {100 - shown} more")
    huge = [PackageChange("x" * 300, Change.INSTALL, None, "1")]
    assert len(describe(huge, 100)) == 100
    assert describe([], 100) == "apt"


def test_what_apt_2_6_on_debian_12_wrote_to_the_hook() -> None:
    """Recorded from apt-get install and remove of a local .deb (the configuration dump cut short)."""
    install = parse(
        [
            "VERSION 3\n",
            "APT::Architecture=amd64\n",
            "\n",
            "bootagent-probe - - none < 1.0-1 all none /tmp/aptprobe/bootagent-probe_1.0-1_all.deb\n",
            "bootagent-probe - - none < 1.0-1 all none **CONFIGURE**\n",
        ]
    )
    assert install.changes == (PackageChange("bootagent-probe", Change.INSTALL, None, "1.0-1"),)
    remove = parse(["VERSION 3\n", "\n", "bootagent-probe 1.0-1 all none > - - none **REMOVE**\n"])
    assert remove.changes == (PackageChange("bootagent-probe", Change.REMOVE, "1.0-1", None),)
    assert describe(remove.changes, 200) == "apt: remove bootagent-probe 1.0-1"
