"""The boot counter in GRUB's own language, run by GRUB itself (grub-emu, the GRUB interpreter as a user
program) and held against the Python rule in bootagent.recovery.counter."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bootagent.grub import counting
from bootagent.grub.counting import Counting
from bootagent.grub.menu import GrubenvPlace, MenuInput, build, render
from bootagent.recovery.counter import MAX_TRIES, TRIES_VAR, at_limit, next_tries
from tests.unit.grub.test_menu import grub_script_check

pytestmark = pytest.mark.subprocess

ODD_VALUES = ("", "x", "-1", "21", "99", "03", " 1", "1 ", "2;reboot", "é")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def grub_emu(script: str, tmp_path: Path) -> list[str]:
    """Run `script` as grub.cfg in grub-emu (on a pty: it wants a terminal) and return what it printed."""
    tool = shutil.which("grub-emu")
    assert tool, "grub-emu (the GRUB interpreter as a program) is installed by scripts/setup-host.sh"
    prefix = tmp_path / "grub"
    prefix.mkdir(exist_ok=True)
    modules = prefix / "x86_64-emu"
    if not modules.exists():
        modules.symlink_to("/usr/lib/grub/x86_64-emu")
    (prefix / "grub.cfg").write_text("set pager=0\n" + script + "\necho END-OF-SCRIPT\nhalt\n")
    cmd = f"{tool} -d {prefix} -m /dev/null -r host"
    done = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "TERM": "dumb"},
    )
    text = ESCAPES.sub("", done.stdout.decode("utf-8", "replace")).replace("\r", "")
    assert "END-OF-SCRIPT" in text, text
    return [line for line in text.splitlines() if line.strip()]


def grub_value(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_grub_steps_the_counter_exactly_as_the_python_rule(tmp_path: Path) -> None:
    values = [str(n) for n in range(MAX_TRIES + 1)] + list(ODD_VALUES)
    script = ["insmod regexp"]
    for i, value in enumerate(values):
        script.append(f"set {TRIES_VAR}={grub_value(value)}")
        script += counting.step()
        script.append(f'echo "STEP {i} ${{{TRIES_VAR}}}"')
    out = grub_emu("\n".join(script), tmp_path)
    got = {int(m.group(1)): m.group(2) for line in out if (m := re.fullmatch(r"STEP (\d+) (\S*)", line))}
    assert got == {i: str(next_tries(v)) for i, v in enumerate(values)}, out
    assert not [line for line in out if line.startswith("error")], out


@pytest.mark.parametrize("limit", [1, 2, 3, 7, MAX_TRIES])
def test_grub_starts_the_recovery_exactly_at_the_limit(limit: int, tmp_path: Path) -> None:
    values = [str(n) for n in range(MAX_TRIES + 1)] + list(ODD_VALUES)
    script = ["insmod regexp"]
    for i, value in enumerate(values):
        script.append(f"set {TRIES_VAR}={grub_value(value)}")
        script += counting.decide(Counting(limit=limit))
        script.append(f'echo "AT {i} ${{bootagent_recover}}"')
    out = grub_emu("\n".join(script), tmp_path)
    got = {
        int(m.group(1)): m.group(2) == "1" for line in out if (m := re.fullmatch(r"AT (\d+) ?(\S*)", line))
    }
    assert got == {i: at_limit(v, limit) for i, v in enumerate(values)}, out


def _menu(tmp_path: Path, limit: int = 3) -> str:
    data = MenuInput(
        pool="rpool",
        root="ROOT",
        environments=("beta", "gamma"),
        fallback="beta",
        grubenv=GrubenvPlace(uuid=None, path="/grubenv"),
        counting=Counting(limit=limit, panic=7),
    )
    return render(build(data))


def test_the_whole_menu_reads_the_counter_and_waits_at_the_limit_without_an_agent(tmp_path: Path) -> None:
    """The real preamble in real GRUB: the counter is read from grubenv with GRUB's own load_env; at the limit
    with no agent image to recover with (grub-emu finds no pool), the menu waits for a person."""
    text = _menu(tmp_path)
    grub_script_check(text, tmp_path)
    probe = 'echo "SEEN tries=${bootagent_tries} recover=${bootagent_recover} timeout=${timeout}"'
    for tries, waits in (("2", False), ("3", True), ("garbage", False)):
        env = tmp_path / "grub" / "grubenv"
        env.parent.mkdir(exist_ok=True)
        env.unlink(missing_ok=True)
        subprocess.run(["grub-editenv", str(env), "create"], check=True)
        subprocess.run(["grub-editenv", str(env), "set", f"{TRIES_VAR}={tries}"], check=True)
        out = grub_emu("set timeout=5\n" + text + probe, tmp_path)
        seen = next(line for line in out if line.startswith("SEEN"))
        assert seen == f"SEEN tries={tries} recover= timeout={'-1' if waits else '5'}", out
        assert any("waiting for a person" in line for line in out) == waits, out


def test_the_default_entry_counts_before_the_kernel_in_one_save_env(tmp_path: Path) -> None:
    text = _menu(tmp_path)
    body = text[text.index("--id bootagent-default {") : text.index("--id bootagent-recovery")]
    lines = [line.strip() for line in body.splitlines()]
    saves = [i for i, line in enumerate(lines) if line.startswith("save_env")]
    assert len(saves) == 1
    assert lines[saves[0]].endswith(f"bootagent_once {TRIES_VAR}")
    first_linux = next(i for i, line in enumerate(lines) if line.startswith("linux "))
    assert saves[0] < first_linux
    step = [line.strip() for line in counting.step()]
    start = lines.index(step[0])
    assert lines[start : start + len(step)] == step
    assert start < saves[0]
    assert "save_env" not in text[: text.index("--id bootagent-default {")]  # nothing else writes per boot
    assert text.count("save_env") == 1


def test_a_reset_under_way_is_read_from_grubenv_by_real_grub(tmp_path: Path) -> None:
    """GRUB's own load_env reads the reset flag the agent writes; the title says every entry carries it on."""
    text = _menu(tmp_path)
    probe = 'echo "SEEN reset=${bootagent_reset} title=${bootagent_title}"'
    for flag, title in (
        ("erase-all", "FACTORY RESET UNDER WAY (erase-all): every entry carries it on"),
        (None, "boot environment beta"),
    ):
        env = tmp_path / "grub" / "grubenv"
        env.parent.mkdir(exist_ok=True)
        env.unlink(missing_ok=True)
        subprocess.run(["grub-editenv", str(env), "create"], check=True)
        if flag:
            subprocess.run(["grub-editenv", str(env), "set", f"bootagent_reset={flag}"], check=True)
        out = grub_emu(text + probe, tmp_path)
        at = next(i for i, line in enumerate(out) if line.startswith("SEEN"))
        seen = " ".join(out[at : out.index("END-OF-SCRIPT")])  # the emulator wraps at 80 columns
        assert seen == f"SEEN reset={flag or ''} title={title}", out
