"""bootagent's grub.cfg entries: built from the model and the name rule, every value quoted, checked by
GRUB's own grub-script-check, and read back with GRUB's word splitting to see what GRUB will run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootagent.grub.menu import GrubenvPlace, GrubSettings, MenuInput, Protection, build, kernel_words, render
from bootagent.names import GRUB_REGEXP
from bootagent.reset.password import make_hash
from tests.unit.grub.grubscript import SEPARATOR, words

# Every command the menu may contain; a value that escaped its quotes would show up as another one.
COMMANDS = {
    "###", "insmod", "set", "export", "search", "if", "then", "fi", "else", "elif", "load_env", "save_env",
    "echo", "menuentry", "submenu", "linux", "initrd", "}", "sleep", "password_pbkdf2",
}  # fmt: skip

HOSTILE_NAMES = (
    "my test", "a:b", "a;reboot", "$(reboot)", "`x`", "it's", 'dq"', "a\nreboot", "*", "a}b", "${prefix}",
    "-x", "x" * 65, "ümlaut", "a\\b", "#c", "a>b", "",
)  # fmt: skip
HOSTILE_ARGS = (
    "; reboot",
    "quiet\nreboot\n",
    'a="x ; reboot"',
    "$(reboot) ${prefix} `id`",
    "it's }{ |&<>",
    'unbalanced "quote',
    "tab\there",
    "back\\slash",
    "\x01ctl",
)


def grub_script_check(text: str, tmp_path: Path) -> None:
    tool = shutil.which("grub-script-check")
    assert tool, "grub-script-check (grub2-common) is installed by scripts/setup-host.sh"
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(text)
    result = subprocess.run([tool, str(cfg)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr + text


def commands(text: str) -> list[list[str]]:
    """Each command's words, as GRUB splits them (lines, and `;` within a line)."""
    out = []
    for line in text.splitlines():
        parsed = words(line.strip())
        assert parsed, f"empty command line in {text!r}"
        while parsed:
            cut = parsed.index(SEPARATOR) if SEPARATOR in parsed else len(parsed)
            command, parsed = parsed[:cut], parsed[cut + 1 :]
            assert command, f"an empty command in line {line!r}"
            assert command[0] in COMMANDS, f"unexpected command {command} in line {line!r}"
            out.append(command)
    return out


def linux_lines(text: str) -> list[list[str]]:
    """The `linux` commands of the boots (not those of the factory reset: see reset_lines)."""
    return [c for c in commands(text) if c[0] == "linux" and "bootagent=reset" not in c]


def reset_lines(text: str) -> list[list[str]]:
    return [c for c in commands(text) if c[0] == "linux" and "bootagent=reset" in c]


RESETS = ("bootagent-reset-keep-data", "bootagent-reset-erase-all")


def make(**kw: object) -> MenuInput:
    base: dict[str, object] = {
        "pool": "rpool",
        "root": "ROOT",
        "environments": ("alpha", "beta", "gamma"),
        "fallback": "beta",
        "pool_uuid": "1f2e3d4c5b6a7980",
    }
    base.update(kw)
    return MenuInput(**base)  # type: ignore[arg-type]


@pytest.mark.subprocess
def test_the_menu_has_default_recovery_and_one_entry_per_environment(tmp_path: Path) -> None:
    menu = build(make(settings=GrubSettings(distributor="Debian", cmdline_linux=("console=ttyS0,115200",))))
    text = render(menu)
    grub_script_check(text, tmp_path)
    ids = [c[c.index("--id") + 1] for c in commands(text) if c[0] in ("menuentry", "submenu")]
    assert ids == [
        "bootagent-default",
        "bootagent-recovery",
        "bootagent-environments",
        "bootagent-be-alpha",
        "bootagent-be-beta",
        "bootagent-be-gamma",
        *RESETS,
    ]
    titles = [c[1] for c in commands(text) if c[0] == "menuentry"]
    assert titles[0] == "Debian GNU/Linux, ${bootagent_title}"
    assert ["set", "bootagent_title=boot environment ${bootagent_be}"] in commands(text)
    assert titles[1] == "Debian GNU/Linux, bootagent recovery menu (${bootagent_be})"
    assert titles[2] == "Debian GNU/Linux, boot environment alpha"
    unattended, first, recovery, alpha = linux_lines(text)[:4]
    assert first[1:] == [
        "(${bootagent_dev})/ROOT/${bootagent_be}@/boot/vmlinuz",
        "root=ZFS=${bootagent_pool}/ROOT/${bootagent_be}",
        "panic=10",
        "console=ttyS0,115200",
    ]
    assert unattended[1:-2] == first[1:]
    assert unattended[-2:] == ["bootagent=recover", "bootagent.failed=${bootagent_failed}"]
    assert recovery[-3:] == ["bootagent=menu", "bootagent.failed=${bootagent_tries}", "bootagent.limit=3"]
    assert alpha[1:3] == [
        "(${bootagent_dev})/ROOT/alpha@/boot/vmlinuz",
        "root=ZFS=${bootagent_pool}/ROOT/alpha",
    ]
    assert "set bootagent_fallback=beta" in text
    assert f"regexp {GRUB_REGEXP!r}".replace('"', "'") in text
    assert "search --no-floppy --fs-uuid --set=bootagent_dev 1f2e3d4c5b6a7980" in text


def test_what_00_header_owns_is_left_to_it() -> None:
    text = render(build(make()))
    for owned in ("serial", "terminal_input", "terminal_output", "timeout", "default"):
        found = [c for c in commands(text) if c[0] == owned or (c[0] == "set" and c[1].startswith(owned))]
        # the one exception: at the boot-count limit with no agent image, the menu waits for a person
        # rather than boot the failing environment again
        assert found == ([["set", "timeout=-1"]] if owned == "timeout" else [])
    lines = text.splitlines()
    at = lines.index("\t\tset timeout=-1")
    assert "waiting for a person" in lines[at - 2]


def test_cmdline_default_is_not_on_the_recovery_entry() -> None:
    text = render(
        build(make(settings=GrubSettings(cmdline_linux=("a=1",), cmdline_linux_default=("quiet",))))
    )
    unattended, default, recovery, *others = linux_lines(text)
    assert default[-2:] == ["a=1", "quiet"]
    assert unattended[-3:] == ["a=1", "bootagent=recover", "bootagent.failed=${bootagent_failed}"]
    assert recovery[-4:] == [
        "a=1",
        "bootagent=menu",
        "bootagent.failed=${bootagent_tries}",
        "bootagent.limit=3",
    ]
    assert all(line[-1] == "quiet" for line in others)


def test_the_submenu_entries_see_the_pool_and_its_device() -> None:
    """GRUB runs a submenu in a context of its own: the entries in it see only exported variables (without
    them, the VM showed `loading /ROOT/a:b` and 'no server is specified')."""
    text = render(build(make()))
    cmds = commands(text)
    exported = {c[1] for c in cmds if c[0] == "export"}
    submenu = text.index("submenu ")
    used = {
        v
        for v in ("bootagent_pool", "bootagent_dev", "bootagent_be", "bootagent_reset")
        if "${" + v + "}" in text[submenu:]
    }
    assert used <= exported
    # the environment GRUB chose and the reset flag: a reset under way is carried on from any entry
    assert used == {"bootagent_pool", "bootagent_dev", "bootagent_be", "bootagent_reset"}
    # exported before the search sets the device (export names the variable, not its value at that point)
    assert text.index("export bootagent_dev") < text.index("search --no-floppy")


def test_without_submenu_the_entries_are_top_level() -> None:
    text = render(build(make(settings=GrubSettings(submenu=False))))
    assert "submenu" not in text
    assert "\tmenuentry" not in text


def test_grubenv_on_its_own_file_system() -> None:
    text = render(build(make(grubenv=GrubenvPlace(uuid="abcd-1234", path="/grub/grubenv"))))
    cmds = commands(text)
    assert ["search", "--no-floppy", "--fs-uuid", "--set=bootagent_envdev", "abcd-1234"] in cmds
    assert ["set", "bootagent_env=(${bootagent_envdev})/grub/grubenv"] in cmds
    text = render(build(make()))
    assert ["set", "bootagent_env=${prefix}/grubenv"] in commands(text)


def test_the_layout_root_comes_from_the_config() -> None:
    text = render(build(make(root="sys/BE")))
    assert "/ROOT/" not in text
    assert linux_lines(text)[0][1] == "(${bootagent_dev})/sys/BE/${bootagent_be}@/boot/vmlinuz"


@pytest.mark.subprocess
def test_names_outside_the_rule_get_no_entry_and_a_reason(tmp_path: Path) -> None:
    names = ("alpha", *HOSTILE_NAMES)
    menu = build(make(environments=names, fallback="my test"))
    text = render(menu)
    grub_script_check(text, tmp_path)
    assert menu.environments == ("alpha", "a:b")
    ids = [c[c.index("--id") + 1] for c in commands(text) if c[0] == "menuentry"]
    assert ids == [
        "bootagent-default",
        "bootagent-recovery",
        "bootagent-be-alpha",
        "bootagent-be-a:b",
        *RESETS,
    ]
    assert "set bootagent_fallback=alpha" in text  # the bootfs with a space does not drop the menu
    warned = "\n".join(menu.warnings)
    assert "'my test' gets no GRUB entry: it contains a space" in warned
    assert "zfs rename rpool/ROOT/my test" in warned
    assert "the pool's bootfs names 'my test'" in warned
    assert "reboot" not in {c[0] for c in commands(text)}


def test_no_bootable_environment_gives_no_menu() -> None:
    menu = build(make(environments=("my test",), fallback=None))
    assert not menu.usable
    assert render(menu) == ""
    assert any("no bootable boot environment" in w for w in menu.warnings)
    assert render(build(make(environments=(), fallback=None))) == ""


@pytest.mark.subprocess
@pytest.mark.parametrize("arg", HOSTILE_ARGS)
def test_hostile_kernel_arguments_never_become_grub_commands(arg: str, tmp_path: Path) -> None:
    settings_, warnings = GrubSettings.from_environ(
        {"GRUB_CMDLINE_LINUX": f"console=ttyS0 {arg}", "GRUB_CMDLINE_LINUX_DEFAULT": arg}
    )
    text = render(build(make(settings=settings_), warnings))
    grub_script_check(text, tmp_path)
    expected = list(kernel_words(f"console=ttyS0 {arg}")[0])
    for line in linux_lines(text):
        assert line[3] == "panic=10"
        assert line[4 : 4 + len(expected)] == expected


def test_kernel_words_follow_the_kernel() -> None:
    assert kernel_words('a "b c" d="e f"') == (("a", "b c", "d=e f"), [])
    words_, problems = kernel_words("quiet\nreboot")
    assert words_ == ("quiet", "reboot")  # a newline is white space to the kernel: two arguments
    words_, problems = kernel_words("ok \x01bad back\\slash")
    assert words_ == ("ok",)
    assert len(problems) == 2
    assert kernel_words('x "open')[1] == ["unbalanced double quotes; the rest of the line is one argument"]


def test_distributor_is_cleaned_for_titles() -> None:
    s, warnings = GrubSettings.from_environ({"GRUB_DISTRIBUTOR": "Deb'ian\n$(x)"})
    assert s.os_name == "Deb'ian $(x) GNU/Linux"
    title = commands(render(build(make(settings=s))))
    assert [c for c in title if c[0] == "menuentry"][2][1] == "Deb'ian $(x) GNU/Linux, boot environment alpha"
    assert GrubSettings().os_name == "GNU/Linux"
    assert GrubSettings(distributor="Ubuntu").os_name == "Ubuntu"
    assert GrubSettings.from_environ({"GRUB_DISABLE_SUBMENU": "y"})[0].submenu is False


@pytest.mark.subprocess
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(max_size=12), max_size=5),
    cmdline=st.text(max_size=40),
    distributor=st.text(max_size=15),
    pool=st.sampled_from(["rpool", "tank", "my-pool.1:x"]),
)
def test_any_input_gives_a_valid_menu_with_only_its_own_commands(
    names: list[str], cmdline: str, distributor: str, pool: str, tmp_path: Path
) -> None:
    s, warnings = GrubSettings.from_environ(
        {"GRUB_CMDLINE_LINUX": cmdline.replace("\0", ""), "GRUB_DISTRIBUTOR": distributor.replace("\0", "")}
    )
    menu = build(make(pool=pool, environments=("base", *names), fallback=None, settings=s), warnings)
    text = render(menu)
    grub_script_check(text, tmp_path)
    commands(text)


def test_the_reset_entries_start_the_agent_on_their_confirmation() -> None:
    text = render(build(make()))
    keep, erase = [c for c in commands(text) if c[0] == "menuentry"][-2:]
    assert keep[1] == "GNU/Linux, factory reset, keeping the customer's data"
    assert erase[1] == "GNU/Linux, factory reset, ERASING EVERYTHING"
    modes = [[w for w in c if w.startswith("bootagent.reset=")] for c in reset_lines(text)]
    # every other entry carries a reset under way on (resume); the two reset entries name their mode
    assert modes.count(["bootagent.reset=keep-data"]) == 1
    assert modes.count(["bootagent.reset=erase-all"]) == 1
    boots = len([c for c in commands(text) if c[0] == "menuentry"]) - 2
    assert modes.count(["bootagent.reset=resume"]) == boots
    assert "--unrestricted" not in text  # no password: nothing is restricted
    assert render(build(make(reset_entries=False))).count("bootagent.reset=keep-data") == 0


def test_the_grub_password_restricts_only_the_resets() -> None:
    hashed = make_hash("pw", b"0123456789abcdef")
    text = render(build(make(protection=Protection("admin", hashed))))
    cmds = commands(text)
    assert ["set", "superusers=admin"] in cmds
    assert ["password_pbkdf2", "admin", hashed] in cmds
    entries = [c for c in cmds if c[0] in ("menuentry", "submenu")]
    restricted = [c[c.index("--id") + 1] for c in entries if "--unrestricted" not in c]
    assert restricted == list(RESETS)


def entry_ids(text: str) -> list[str]:
    return [c[c.index("--id") + 1] for c in commands(text) if c[0] in ("menuentry", "submenu")]


@pytest.mark.subprocess
def test_over_the_entry_limit_the_newest_the_fallback_and_the_last_good_keep_entries(tmp_path: Path) -> None:
    names = tuple(f"be{i:02d}" for i in range(12))  # oldest first
    menu = build(make(environments=names, fallback="be00", entry_limit=3, always=("be04",)))
    assert menu.environments == ("be00", "be04", "be09", "be10", "be11")
    assert menu.more == 7
    text = render(menu)
    grub_script_check(text, tmp_path)
    ids = entry_ids(text)
    envs = [i for i in ids if i.startswith("bootagent-be-")]
    assert envs == [f"bootagent-be-{n}" for n in menu.environments]
    # the rest is the agent's: one entry, last in the submenu, that opens its menu
    assert ids[ids.index("bootagent-be-be11") + 1] == "bootagent-more"
    more = next(c for c in commands(text) if c[0] == "menuentry" and "bootagent-more" in c)
    assert more[1] == "GNU/Linux, 7 older boot environments: in the bootagent recovery menu"
    menus = [c for c in linux_lines(text) if "bootagent=menu" in c]
    assert len(menus) == 2  # the recovery entry and this one, both on the default environment
    assert all(c[1] == "(${bootagent_dev})/ROOT/${bootagent_be}@/boot/vmlinuz" for c in menus)


def test_within_the_entry_limit_or_without_one_every_environment_has_its_entry() -> None:
    names = tuple(f"be{i:02d}" for i in range(12))
    for limit in (0, 12, 50):
        menu = build(make(environments=names, fallback="be03", entry_limit=limit))
        assert menu.environments == names
        assert menu.more == 0
        assert "bootagent-more" not in render(menu)
    # the limit counts bootable names only: a refused name neither takes a place nor counts as more
    menu = build(make(environments=("a b", "be01", "be02"), fallback="be01", entry_limit=2))
    assert (menu.environments, menu.more) == (("be01", "be02"), 0)
