"""The kernel command line."""

from __future__ import annotations

import pytest

from bootagent.boot.cmdline import ActionKind, AgentMode, CmdlineAction, cmdline_for, parse_cmdline

DEBIAN = "BOOT_IMAGE=/ROOT/beta@/boot/vmlinuz root=ZFS=rpool/ROOT/beta ro console=tty0 console=ttyS0,115200n8"


def test_ordinary_boot_is_off() -> None:
    p = parse_cmdline(DEBIAN)
    assert p.mode is AgentMode.OFF
    assert (p.root, p.pool) == ("rpool/ROOT/beta", "rpool")
    assert p.console == "ttyS0"
    assert p.serial_console
    assert p.problems == ()


def test_menu_with_settings() -> None:
    p = parse_cmdline(DEBIAN + " bootagent=menu bootagent.timeout=5 bootagent.rows=24 bootagent.cols=80")
    assert p.mode is AgentMode.MENU
    assert (p.timeout, p.rows, p.cols) == (5, 24, 80)


def test_bare_flag_means_menu_and_last_console_wins() -> None:
    p = parse_cmdline("root=zfs:AUTO bootagent console=ttyS0 console=tty1")
    assert p.mode is AgentMode.MENU
    assert p.root is None
    assert p.console == "tty1"
    assert not p.serial_console


@pytest.mark.parametrize(
    ("value", "action"),
    [
        ("boot:alpha", CmdlineAction(ActionKind.BOOT, target="alpha")),
        ("boot-snapshot:beta@s2", CmdlineAction(ActionKind.BOOT_SNAPSHOT, target="beta@s2")),
        ("rollback", CmdlineAction(ActionKind.ROLLBACK, steps=1)),
        ("rollback:2", CmdlineAction(ActionKind.ROLLBACK, steps=2)),
        ("rollforward", CmdlineAction(ActionKind.ROLLFORWARD)),
    ],
)
def test_actions(value: str, action: CmdlineAction) -> None:
    p = parse_cmdline(f"{DEBIAN} bootagent.action={value}")
    assert p.action == action
    assert p.mode is AgentMode.AUTO


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("bootagent.action=explode", "unknown action"),
        ("bootagent.action=boot:bad'name", "contains"),
        ("bootagent.action=boot-snapshot:beta", "needs ENV@SNAPSHOT"),
        ("bootagent.action=rollback:0", "outside 1..1000"),
        ("bootagent.timeout=soon", "not a number"),
        ("bootagent.rows=3", "outside 10..500"),
        ("bootagent=sometimes", "expected menu, auto, recover, reset or off"),
        ("bootagent.reset=now", "expected keep-data, erase-all, resume"),
    ],
)
def test_bad_values_are_reported_and_ignored(extra: str, problem: str) -> None:
    p = parse_cmdline(f"{DEBIAN} {extra}")
    assert len(p.problems) == 1
    assert problem in p.problems[0]
    assert p.action is None


def test_unbalanced_quotes_never_raise() -> None:
    p = parse_cmdline('root=ZFS=rpool/ROOT/a bootagent=menu foo="bar')
    assert p.mode is AgentMode.MENU
    assert p.problems == ("unbalanced quotes on the kernel command line",)


def test_double_quotes_group_words_like_the_kernel() -> None:
    p = parse_cmdline('root=ZFS=rpool/ROOT/a "bootagent.action=boot:alpha" acpi_osi="Windows 2020" bootagent')
    assert p.action == CmdlineAction(ActionKind.BOOT, target="alpha")
    assert p.mode is AgentMode.MENU
    assert p.problems == ()


def test_kexec_marker() -> None:
    assert parse_cmdline(DEBIAN + " bootagent=menu bootagent.kexec=1").kexeced


def test_cmdline_for_kexec_replaces_root_and_drops_agent_arguments() -> None:
    p = parse_cmdline(DEBIAN + " bootagent=menu bootagent.action=boot:gamma quiet")
    line = cmdline_for(p, root="rpool/ROOT/gamma", drop_agent=True, kexeced=True)
    assert line == "ro console=tty0 console=ttyS0,115200n8 quiet root=ZFS=rpool/ROOT/gamma bootagent.kexec=1"


def test_cmdline_for_kexec_follows_the_kernels_quoting_and_the_chosen_root_wins() -> None:
    """The symptom: the old line was split on spaces, so a quoted root= survived after the new one and the
    kexec'ed kernel booted the wrong environment."""
    p = parse_cmdline('"root=ZFS=rpool/ROOT/beta" ro dyndbg="file zfs.c +p" "root=ZFS=rpool/ROOT/x y"')
    line = cmdline_for(p, root="rpool/ROOT/gamma", drop_agent=True, kexeced=False)
    assert line == 'ro dyndbg="file zfs.c +p" root=ZFS=rpool/ROOT/gamma'
    reparsed = parse_cmdline(line)
    assert reparsed.root == "rpool/ROOT/gamma"
    assert reparsed.problems == ()
    with pytest.raises(ValueError, match="cannot carry"):
        cmdline_for(p, root="rpool/ROOT/my test", drop_agent=True, kexeced=False)


@pytest.mark.parametrize(
    "raw",
    [
        'root=ZFS=a "unbalanced',
        r"root=ZFS=rpool/ROOT/beta\ x",
        'a="b" "c d" e=" f "',
        "\t\n root=x",
    ],
)
def test_cmdline_for_always_ends_with_the_chosen_root(raw: str) -> None:
    line = cmdline_for(parse_cmdline(raw), root="rpool/ROOT/gamma", drop_agent=True, kexeced=False)
    assert parse_cmdline(line).root == "rpool/ROOT/gamma"
    assert line.endswith("root=ZFS=rpool/ROOT/gamma")


def test_the_unattended_recovery_mode_and_what_grub_counted() -> None:
    p = parse_cmdline(
        "root=ZFS=rpool/ROOT/gamma panic=10 console=tty0 console=ttyS0,115200 "
        "bootagent=recover bootagent.failed=3"
    )
    assert p.mode is AgentMode.RECOVER
    assert p.failed == 3
    assert p.consoles == ("tty0", "ttyS0")
    assert p.console == "ttyS0"
    bad = parse_cmdline("bootagent=recover bootagent.failed=many")
    assert bad.failed is None
    assert bad.problems == ("bootagent.failed='many': not a number; ignored",)
