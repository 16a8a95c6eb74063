"""The `bootagent` command: every verb, --help and --json, exit codes and error presentation."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootagent.bootmenu import MenuRefresh
from bootagent.cli.context import Context, running_system
from bootagent.cli.main import build_parser, confirm, main
from bootagent.errors import ExitCode, RefusedError
from bootagent.grubenv import GrubenvFile
from bootagent.recovery.lifecycle import RunningSystem, Watchdog
from bootagent.runner import CommandResult
from tests.fakes import FakeZfs, howto_pools, reference_pool

VERBS = [
    "list",
    "checkpoint",
    "create",
    "activate",
    "rollback",
    "rollforward",
    "destroy",
    "prune",
    "mount",
    "umount",
    "diff",
    "keep",
    "mark-good",
    "status",
]


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def zfs(tmp_path: Path) -> FakeZfs:
    z = reference_pool()
    state = tmp_path / "state"
    state.mkdir()
    z.mounted[str(state)] = "rpool/bootagent"
    return z


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "grub").mkdir()
    GrubenvFile(tmp_path / "grub" / "grubenv").update({"bootagent_default": "beta"})
    cfg = tmp_path / "bootagent.yaml"
    cfg.write_text(f"pool: rpool\ngrubenv: {tmp_path}/grub/grubenv\n")
    return cfg


class FakeMenu:
    """GRUB's menu: counts the regenerations; `warning` makes them fail."""

    def __init__(self) -> None:
        self.refreshed = 0
        self.warning: str | None = None

    def refresh(self) -> MenuRefresh:
        self.refreshed += 1
        return MenuRefresh(self.warning is None, self.warning)


@pytest.fixture
def menu() -> FakeMenu:
    return FakeMenu()


@pytest.fixture
def cli(zfs: FakeZfs, config: Path, menu: FakeMenu) -> Any:
    def systemctl(argv: Sequence[str], **_: Any) -> CommandResult:
        if list(argv[:2]) == ["systemctl", "show"]:
            assert list(argv[2:]) == ["--property=NextElapseUSecRealtime", "--value", "bootagent-prune.timer"]
            return CommandResult(tuple(argv), 0, "Fri 2026-12-04 00:17:01 UTC\n", "")
        assert argv[:2] == ["systemctl", "is-enabled"], argv
        return CommandResult(tuple(argv), 0, "enabled\n", "")

    def recovery(ctx: Context) -> RunningSystem:
        dog = Watchdog(arm=lambda s: "armed", disarm=lambda: "stopped", present=lambda: True)
        return replace(running_system(ctx), runner=systemctl, watchdog=dog)

    def invoke(*argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--config", str(config), *argv],
            backend=lambda: zfs,
            menu=lambda _config: menu,
            stdout=out,
            stderr=err,
            recovery=recovery,
        )
        return Result(code, out.getvalue(), err.getvalue())

    return invoke


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_and_json(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([verb, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: bootagent {verb}" in text
    assert "--json" in text


def test_top_level_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "5 refused by a safety rule" in text
    for verb in VERBS:
        assert verb in text


def test_list_text_and_json(cli: Any) -> None:
    r = cli("list", "-s")
    assert r.code == 0
    assert "beta   AR" in r.out
    assert "@s2" in r.out
    data = cli("list", "--json").json()
    assert data["active"] == "beta"
    assert data["running"] == "beta"
    assert [e["name"] for e in data["environments"]] == ["alpha", "beta", "gamma"]
    assert data["environments"][1]["snapshots"][0]["name"] == "beta@s1"


def test_list_history_numbers_the_steps(cli: Any) -> None:
    data = cli("list", "--history", "--json").json()
    assert [(h["step"], h["name"]) for h in data["history"]] == [
        (1, "beta@s3"),
        (2, "beta@s2"),
        (3, "beta@s1"),
    ]


def test_checkpoint_json(cli: Any, zfs: FakeZfs) -> None:
    data = cli(
        "checkpoint", "-n", "pre", "-d", "vor dem Upgrade", "--created-by", "package-manager", "--json"
    ).json()
    assert data["dataset"] == "rpool/ROOT/beta@pre"
    assert data["created_by"] == "package-manager"
    assert data["description"] == "vor dem Upgrade"


def test_create_activate_and_once(cli: Any, zfs: FakeZfs, tmp_path: Path) -> None:
    r = cli("create", "new", "alpha@s1", "--activate", "--json")
    assert r.code == 0, r.err
    assert r.json()["origin"] == "rpool/ROOT/alpha@s1"
    assert zfs.bootfs == "rpool/ROOT/new"
    r = cli("activate", "gamma", "--once")
    assert r.out == "gamma boots next time only; later boots use new\n"
    assert GrubenvFile(tmp_path / "grub" / "grubenv").read().values["bootagent_once"] == "gamma"
    data = cli("activate", "beta", "--json").json()
    assert data["flags"] == ["active", "running"]


def test_rollback_and_rollforward_json(cli: Any, zfs: FakeZfs) -> None:
    data = cli("rollback", "--steps", "2", "--json").json()
    assert data == {
        "target": "beta@s2",
        "environment": "beta-s2",
        "destructive": False,
        "destroyed": [],
        "grub_menu_updated": True,
    }
    zfs.mounted["/"] = "rpool/ROOT/beta-s2"
    data = cli("rollforward", "--json").json()
    assert data == {"environment": "beta", "source": "beta", "created": False}


def test_destructive_rollback_needs_yes_without_a_terminal(cli: Any, zfs: FakeZfs) -> None:
    r = cli("rollback", "alpha", "--steps", "2", "--destroy-newer")
    assert r.code == ExitCode.REFUSED
    assert "needs a confirmation" in r.err
    assert "hint: add --yes" in r.err
    assert zfs.changes() == []
    r = cli("rollback", "alpha", "--steps", "2", "--destroy-newer", "--yes", "--json")
    assert r.json()["destroyed"] == ["rpool/ROOT/alpha@s3"]


def test_typed_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    confirm("ROLLBACK", "sure?", assume_yes=False, stdin=Tty("ROLLBACK\n"))
    with pytest.raises(RefusedError, match="not confirmed"):
        confirm("ROLLBACK", "sure?", assume_yes=False, stdin=Tty("rollback\n"))
    with pytest.raises(RefusedError, match="not confirmed"):
        confirm("ROLLBACK", "sure?", assume_yes=False, stdin=Tty(""))


def test_destroy_refusal_is_one_clear_message(cli: Any, zfs: FakeZfs) -> None:
    r = cli("destroy", "beta", "--yes")
    assert r.code == ExitCode.REFUSED
    assert r.err.startswith(
        "bootagent: error: refusing to destroy (nothing was changed):\n  beta: it is the running"
    )
    assert "Traceback" not in r.err
    assert cli("destroy", "gamma@s1", "--yes", "--json").json() == {"destroyed": ["rpool/ROOT/gamma@s1"]}


def test_prune_dry_run_json(cli: Any, zfs: FakeZfs) -> None:
    for i in range(12):
        zfs.add_snap(f"rpool/ROOT/beta@auto-{i}", user_props={"org.bootagent:created-by": "automatic"})
    data = cli("prune", "--dry-run", "--json").json()
    assert data["dry_run"] is True
    assert [d["name"] for d in data["would_destroy"]][:2] == ["beta@auto-0", "beta@auto-1"]
    assert zfs.changes() == []
    r = cli("prune")
    assert r.out.startswith("destroyed beta@auto-0")


def test_mount_umount_diff_keep_markgood_status(cli: Any, zfs: FakeZfs, tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    assert cli("mount", "alpha@s1", str(target), "--json").json() == {
        "target": "alpha@s1",
        "path": str(target),
    }
    assert cli("umount", str(target)).out == f"unmounted {target}\n"
    zfs.nodes["rpool/ROOT/beta"].files["/etc/x"] = "1"
    assert cli("diff", "beta@s3", "beta", "--json").json() == [
        {"change": "+", "path": "/etc/x", "new_path": None},
        {"change": "M", "path": "/etc/step", "new_path": None},
    ]
    assert cli("keep", "alpha", "--json").json() == {"target": "alpha", "keep": True}
    assert cli("mark-good", "--json").json()["environment"] == "beta"
    status = cli("status", "--json").json()
    assert status["last_known_good"] == "beta"
    assert [e["action"] for e in status["journal"]][-2:] == ["mark-good", "mark-good"]
    assert status["pending"] == []
    text = cli("status").out
    assert "last-known-good: beta" in text
    assert status["retention"] == {
        "timer": "bootagent-prune.timer",
        "next_run": "Fri 2026-12-04 00:17:01 UTC",
        "would_remove": [],
    }
    assert "prune:           next run Fri 2026-12-04 00:17:01 UTC; would remove 0 checkpoint(s) now" in text


def test_status_says_what_the_next_prune_would_remove(cli: Any, zfs: FakeZfs, tmp_path: Path) -> None:
    cfg = tmp_path / "bootagent.yaml"
    cfg.write_text(cfg.read_text() + "retention:\n  keep_count: 1\n")
    for n in (1, 2, 3):
        assert cli("checkpoint", "-n", f"apt-{n}", "--created-by", "package-manager").code == 0
    status = cli("status", "--json").json()
    assert [i["snapshot"] for i in status["retention"]["would_remove"]] == ["beta@apt-1", "beta@apt-2"]
    assert {i["reason"] for i in status["retention"]["would_remove"]} == {"count"}
    assert "would remove 2 checkpoint(s) now" in cli("status").out
    assert "rpool/ROOT/beta@apt-2" in zfs.nodes  # status removed nothing
    assert "rpool/ROOT/beta@apt-1" in zfs.nodes


def test_status_as_node_exporter_textfile(cli: Any, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    status = cli("status", "--json").json()
    assert status["schema_version"] == 1
    assert (status["environments"], status["checkpoints"]) == (3, {"manual": 9})
    path = tmp_path / "textfile" / "bootagent.prom"
    path.parent.mkdir()
    r = cli("status", "--textfile", str(path))
    assert (r.code, r.out.strip()) == (0, f"wrote {path}")
    values = {
        s.name: s.value
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
        if not s.labels
    }
    assert values["bootagent_environments"] == 3
    assert values["bootagent_last_checkpoint_timestamp_seconds"] == status["last_checkpoint_epoch"]
    assert status["last_export_epoch"] is None
    assert math.isnan(values["bootagent_last_export_timestamp_seconds"])  # never exported
    assert [p.name for p in path.parent.iterdir()] == ["bootagent.prom"]  # no temporary file left
    r = cli("status", "--textfile", str(tmp_path / "bootagent.txt"))
    assert r.code == ExitCode.USAGE
    assert "only files ending in .prom" in r.err
    r = cli("status", "--textfile", str(tmp_path / "missing" / "bootagent.prom"))
    assert r.code == ExitCode.SYSTEM
    assert "cannot write" in r.err


def test_user_error_exit_codes_and_json_errors(cli: Any) -> None:
    r = cli("activate", "nope")
    assert r.code == ExitCode.NOT_FOUND
    assert r.err.splitlines()[0] == "bootagent: error: no boot environment 'nope' in rpool/ROOT"
    r = cli("checkpoint", "-n", "bad name", "--json")
    assert r.code == ExitCode.USAGE
    assert r.json()["exit_code"] == 2
    assert "contains a space" in r.json()["error"]
    r = cli("frobnicate")
    assert r.code == ExitCode.USAGE
    assert "invalid choice" in r.err


def test_bad_config_reports_all_problems(zfs: FakeZfs, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pool: no\nretention:\n  keep_count: 0\nbogus: 1\n")
    err = io.StringIO()
    code = main(["--config", str(cfg), "list"], backend=lambda: zfs, stdout=io.StringIO(), stderr=err)
    assert code == ExitCode.CONFIG
    text = err.getvalue()
    assert f"{cfg}:1:7" in text
    assert f"{cfg}:3:15" in text
    assert f"{cfg}:4:1" in text


def test_internal_errors_hide_the_traceback_unless_debug(config: Path) -> None:
    def broken() -> FakeZfs:
        raise ZeroDivisionError("bug")

    err = io.StringIO()
    code = main(["--config", str(config), "list"], backend=broken, stdout=io.StringIO(), stderr=err)
    assert code == ExitCode.BUG
    assert "internal error: ZeroDivisionError: bug" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    with pytest.raises(ZeroDivisionError):
        main(["--config", str(config), "--debug", "list"], backend=broken, stdout=io.StringIO(), stderr=err)


def test_missing_pool_has_a_hint(cli: Any) -> None:
    r = cli("--pool", "tank", "list")
    assert r.code == ExitCode.NOT_FOUND
    assert "hint: zpool import" in r.err


def test_grub_menu_follows_the_set_of_environments(cli: Any, menu: FakeMenu) -> None:
    """Regenerated after create, non-destructive rollback, a roll forward that creates, and destroying an
    environment; not after checkpoints, snapshot destruction, activation or a destructive rollback."""
    assert cli("checkpoint", "-n", "c1").code == 0
    assert cli("destroy", "gamma@s1", "--yes").code == 0
    assert cli("activate", "alpha", "--once").code == 0
    assert cli("rollback", "alpha", "--steps", "2", "--destroy-newer", "--yes").code == 0
    assert menu.refreshed == 0
    assert cli("create", "new", "alpha@s1", "--json").json()["grub_menu_updated"] is True
    assert menu.refreshed == 1
    assert cli("rollback", "--steps", "1").code == 0
    assert menu.refreshed == 2
    assert cli("destroy", "new", "--yes").code == 0
    assert menu.refreshed == 3


def test_a_failed_menu_update_is_a_warning_not_an_error(cli: Any, menu: FakeMenu, zfs: FakeZfs) -> None:
    menu.warning = "the change is done, but GRUB's menu was not regenerated (update-grub failed: boom)"
    r = cli("create", "new", "alpha@s1", "--json")
    assert r.code == 0
    assert r.json()["grub_menu_updated"] is False
    assert r.err == f"bootagent: warning: {menu.warning}\n"
    assert zfs.exists("rpool/ROOT/new")


# --- every argument is checked before the pool is touched --------------------------------------------------
BAD_NAMES = ["", "my test", "a+b", "-x", "x" * 65, "bad\udcffbyte", "é"]
NAME_ARGS = [
    ["list", "{}"],
    ["checkpoint", "{}"],
    ["checkpoint", "-n", "{}"],
    ["create", "{}"],
    ["create", "new", "{}"],
    ["create", "new", "beta@{}"],
    ["activate", "{}"],
    ["rollback", "{}"],
    ["rollback", "--name", "{}"],
    ["rollback", "--to", "{}"],
    ["rollforward", "{}"],
    ["destroy", "{}"],
    ["mount", "{}"],
    ["umount", "{}"],
    ["diff", "beta@{}", "beta"],
    ["keep", "{}"],
    ["mark-good", "{}"],
]


@pytest.mark.parametrize("bad", BAD_NAMES)
@pytest.mark.parametrize("argv", NAME_ARGS, ids=lambda a: " ".join(a))
def test_bad_names_are_refused_before_the_pool_is_touched(argv: list[str], bad: str, config: Path) -> None:
    """The symptom: the pool was asked first; an empty name acted on the running environment; a name that
    was not UTF-8 ended in a traceback."""

    def no_pool() -> FakeZfs:
        raise AssertionError("the pool was touched before the arguments were checked")

    out, err = io.StringIO(), io.StringIO()
    args = [a.replace("{}", bad) for a in argv]
    code = main(["--config", str(config), *args, "--json"], backend=no_pool, stdout=out, stderr=err)
    assert code == ExitCode.USAGE, err.getvalue()
    assert json.loads(out.getvalue())["exit_code"] == ExitCode.USAGE
    assert "Traceback" not in err.getvalue()
    err.getvalue().encode("ascii")  # whatever the name held, the message prints on any terminal


@pytest.mark.parametrize("steps", ["0", "-1", "x", ""])
def test_bad_numbers_are_usage_errors(steps: str, config: Path) -> None:
    err = io.StringIO()
    code = main(["--config", str(config), "rollback", "--steps", steps], stdout=io.StringIO(), stderr=err)
    assert code == ExitCode.USAGE
    assert "--steps" in err.getvalue()


def test_global_options_work_after_the_verb_too(zfs: FakeZfs, config: Path, menu: FakeMenu) -> None:
    out = io.StringIO()
    code = main(
        ["list", "--config", str(config), "--pool", "rpool", "--json", "--debug"],
        backend=lambda: zfs,
        menu=lambda _c: menu,
        stdout=out,
        stderr=io.StringIO(),
    )
    assert code == 0
    assert [e["name"] for e in json.loads(out.getvalue())["environments"]] == ["alpha", "beta", "gamma"]
    err = io.StringIO()
    code = main(["list", "--config", str(config), "--pool", "tank"], backend=lambda: zfs, stderr=err)
    assert code == ExitCode.NOT_FOUND  # --pool after the verb is obeyed, not ignored
    assert "tank" in err.getvalue()


def test_every_exit_code_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    helptext = capsys.readouterr().out
    for code in [*(int(c) for c in ExitCode), 130, 141]:
        assert f"| {code} |" in readme, code
        assert f"{code} " in helptext, code


def test_ctrl_c_and_a_closed_output(zfs: FakeZfs, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> FakeZfs:
        raise KeyboardInterrupt

    err = io.StringIO()
    assert main(["--config", str(config), "list"], backend=interrupted, stderr=err) == 130
    assert "interrupted" in err.getvalue()

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr("sys.stdout", io.StringIO())  # what the dup2 to /dev/null would replace
    assert main(["--config", str(config), "list"], backend=lambda: zfs, stdout=ClosedPipe()) == 141


def test_an_operation_cut_short_earlier_is_reported_by_the_next_change(cli: Any, zfs: FakeZfs) -> None:
    from bootagent.journal import Journal, Outcome
    from bootagent.model import Actor

    state = next(p for p, d in zfs.mounted.items() if d == "rpool/bootagent")
    Journal(state, actor=Actor.CLI).record(
        "checkpoint", "beta@cut", Outcome.INTENT, data={"snapshot": "rpool/ROOT/beta@cut"}
    )
    assert len(cli("status", "--json").json()["pending"]) == 1
    r = cli("checkpoint", "-n", "next")
    assert r.code == 0
    assert "checkpoint beta@cut was cut short earlier; closed: no snapshot was made" in r.err
    assert cli("status", "--json").json()["pending"] == []


@pytest.mark.parametrize(
    "line",
    [
        '{"time": 1' + "0" * 5000 + ', "action": "checkpoint"}',
        "[" * 100_000 + "]" * 100_000,
        '{"time": 1, "action": "checkpoint", "data": {"n": ' + "9" * 5000 + "}}",
        '{"time": 1, "action": "chec',  # a torn tail: no newline
    ],
    ids=["a 5000-digit time", "deep nesting", "a 5000-digit value", "torn tail"],
)
def test_a_hostile_journal_line_stops_neither_status_nor_checkpoint(
    cli: Any, zfs: FakeZfs, line: str
) -> None:
    from bootagent.journal import JOURNAL_NAME

    state = Path(next(p for p, d in zfs.mounted.items() if d == "rpool/bootagent"))
    (state / JOURNAL_NAME).write_text(line if line.endswith("chec") else line + "\n")
    status = cli("status", "--json")
    assert status.code == 0, status.err
    assert "Traceback" not in status.err
    made = cli("checkpoint", "-n", "after-bad-line")
    assert made.code == 0, made.err
    assert zfs.exists("rpool/ROOT/beta@after-bad-line")
    entries = cli("status", "--json").json()["journal"]
    assert [e["outcome"] for e in entries if e["target"] == "beta@after-bad-line"] == ["intent", "ok"]
    assert cli("status", "--json").json()["pending"] == []


def test_list_on_two_pools_shows_the_boot_halves_and_what_is_half(cli: Any, zfs: FakeZfs) -> None:
    howto_pools(zfs)
    del zfs.nodes["bpool/BOOT/alpha@s2"]
    zfs.add_fs("bpool/BOOT/old", mountpoint="/boot")
    result = cli("list", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert (data["boot_container"], data["orphans"]) == ("bpool/BOOT", ["bpool/BOOT/old"])
    alpha = next(e for e in data["environments"] if e["name"] == "alpha")
    assert (alpha["boot_dataset"], alpha["missing_half"]) == ("bpool/BOOT/alpha", None)
    assert [s["missing_half"] for s in alpha["snapshots"]] == [
        None,
        "its /boot half bpool/BOOT/alpha@s2 does not exist",
        None,
    ]
    assert cli("list").out.splitlines()[-1] == "bpool/BOOT/old: a /boot half without its root half (not used)"
    text = cli("list", "--snapshots").out
    assert "; /boot of each environment in bpool/BOOT" in text.splitlines()[0]
    assert text.splitlines()[-2:] == [
        "alpha@s2: NOT BOOTABLE, its /boot half bpool/BOOT/alpha@s2 does not exist",
        "bpool/BOOT/old: a /boot half without its root half (not used)",
    ]


# --- setup -----------------------------------------------------------------------------------------------
RECORDED = Path(__file__).resolve().parents[1] / "setup" / "recorded"


def test_setup_dry_run_then_setup_then_again_on_the_howto_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bootagent setup` as an administrator runs it after installing the package on a HOWTO machine: the
    package's own config file, the system's outputs as recorded; the second run changes nothing."""
    from bootagent.setup import facts

    config = tmp_path / "bootagent.yaml"
    default = Path(__file__).resolve().parents[3] / "bootagent" / "data" / "bootagent.yaml"
    config.write_text(default.read_text())
    zfs = FakeZfs()
    made: set[str] = set()
    calls: list[tuple[str, ...]] = []

    def runner(argv: Sequence[str], **_kw: Any) -> CommandResult:
        key = tuple(argv)
        calls.append(key)
        which = next((k for k, v in facts.COMMANDS.items() if v == key), None)
        out = ""
        if which is not None:
            out = (RECORDED / "howto" / f"{which}.txt").read_text()
            if which == "datasets" and zfs.exists("rpool/bootagent"):
                out += "rpool/bootagent\t/var/lib/bootagent\ton\taes-256-gcm\trpool\tpassphrase\t-\n"
        elif argv[0] == "grub-editenv":
            made.add(argv[1])
        return CommandResult(key, 0, out, "")

    monkeypatch.setattr(facts, "file_exists", lambda path: path in made)

    def setup(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--config", str(config), "setup", *args],
            backend=lambda: zfs,
            runner=runner,
            stdout=out,
            stderr=err,
        )
        return code, out.getvalue(), err.getvalue()

    code, out, err = setup("--dry-run")
    assert code == 0, err
    assert "would change:\n  boot_pool: bpool  (/boot is bpool/BOOT/debian" in out
    assert "  grubenv: /boot/efi/grubenv  (/boot/grub/grubenv is on ZFS" in out
    assert "  create the state dataset rpool/bootagent" in out
    assert "  rpool/home\n" in out  # proposed as customer data, not set
    assert config.read_text() == default.read_text()
    assert not zfs.exists("rpool/bootagent")

    code, out, err = setup()
    assert code == 0, err
    assert out.splitlines()[-5:] == [
        f"  wrote {config} (boot_pool, grubenv)",
        "  created rpool/bootagent at /var/lib/bootagent",
        "  created GRUB's environment block /boot/efi/grubenv",
        "  rebuilt the agent's image (bootagent-mkinitrd)",
        "  regenerated GRUB's menu (update-grub)",
    ]
    assert ("update-grub",) in calls
    calls.clear()
    code, out, err = setup("--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["changed"], data["settings"], data["boot_pool"]) == ([], [], "bpool")
    assert ("update-grub",) not in calls


def test_setup_refuses_a_layout_it_cannot_serve_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "bootagent.yaml"
    config.write_text("pool: auto\n")

    def runner(argv: Sequence[str], **_kw: Any) -> CommandResult:
        outputs = {"pools": "", "datasets": "", "mounts": "/ /dev/vda1 ext4 1234\n"}
        from bootagent.setup.facts import COMMANDS

        which = next(k for k, v in COMMANDS.items() if v == tuple(argv))
        return CommandResult(tuple(argv), 0, outputs[which], "")

    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), "setup"], backend=FakeZfs, runner=runner, stdout=out, stderr=err)
    assert code == 5
    assert "bootagent cannot serve this system's layout: the root file system is not on ZFS" in err.getvalue()
    assert "hint: nothing was changed" in err.getvalue()
    assert config.read_text() == "pool: auto\n"
