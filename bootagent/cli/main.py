"""The `bootagent` command: boot environments on the running system.

One parser, one dispatcher, one top-level error handler that maps the error hierarchy to exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, TextIO

from bootagent import __version__
from bootagent.bootmenu import BootMenu, boot_menu
from bootagent.cli import factory, render, transfer
from bootagent.cli.context import Context, build_context
from bootagent.cli.recovery import recovery_status
from bootagent.config import Config, load_config
from bootagent.errors import BootagentError, ExitCode, RefusedError, UsageError
from bootagent.model import Actor, CreatedBy
from bootagent.names import shown, split_target, validate_name
from bootagent.recovery import health, lifecycle
from bootagent.recovery.lifecycle import RunningSystem
from bootagent.reset.mode import ResetMode
from bootagent.runner import Runner, run
from bootagent.transfer.side import Streams
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger("bootagent")

EPILOG = """\
exit codes: 0 ok, 1 internal error (run with --debug for the traceback), 2 usage or bad name,
3 invalid configuration, 4 not found, 5 refused by a safety rule (nothing changed),
6 a zfs/zpool/system call failed, 7 an operation stopped part-way (see 'bootagent status'),
8 a required health check failed (health; the boot is not good),
130 interrupted (Ctrl-C), 141 the output was closed early (e.g. '| head'; the change itself is done)"""
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


@dataclass(frozen=True)
class Output:
    """What a verb produced: a JSON-ready value and its text form."""

    data: Any
    text: str
    warnings: tuple[str, ...] = ()


def _environments_changed(ctx: Context, output: Output) -> Output:
    """The set of environments changed: bring GRUB's per-environment entries up to date."""
    refreshed = ctx.menu.refresh()
    if isinstance(output.data, dict):
        output.data["grub_menu_updated"] = refreshed.updated
    if refreshed.warning:
        return replace(output, warnings=(*output.warnings, refreshed.warning))
    return output


Handler = Callable[[Context, argparse.Namespace], Output]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors become usage errors (exit 2)
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _global_options(p: argparse.ArgumentParser, *, default: Any) -> None:
    """The options every verb takes, before or after the verb (after it, they default to SUPPRESS so the
    values given before the verb stay)."""

    def value(fallback: Any) -> Any:
        return fallback if default is None else default

    p.add_argument(
        "--config",
        metavar="FILE",
        default=value(None),
        help="configuration file (default /etc/bootagent/bootagent.yaml)",
    )
    p.add_argument(
        "--pool",
        metavar="POOL",
        default=value(None),
        help="the pool (default: from the config, else the root's pool)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=value(False),
        help="verbose log; show tracebacks of internal errors",
    )
    p.add_argument(
        "--json", action="store_true", default=value(False), help="print machine-readable JSON on stdout"
    )


# --- argument types: every name is checked when the command line is read, before the pool is touched ---
def environment_arg(text: str) -> str:
    return validate_name(text, what="environment name")


def snapshot_name_arg(text: str) -> str:
    return validate_name(text, what="snapshot name")


def target_arg(text: str) -> str:
    """ENV or ENV@SNAPSHOT."""
    split_target(text)
    return text


def snapshot_target_arg(text: str) -> str:
    """ENV@SNAPSHOT."""
    env, snap = split_target(text)
    if snap is None:
        raise UsageError(
            f"{shown(text)} names an environment; a snapshot is needed here",
            hint=f"write ENV@SNAPSHOT, e.g. {env}@SNAPSHOT",
        )
    return text


def history_target_arg(text: str) -> str:
    """A snapshot in the history: SNAPSHOT or ENV@SNAPSHOT."""
    if "@" in text:
        return snapshot_target_arg(text)
    return snapshot_name_arg(text)


def target_or_path_arg(text: str) -> str:
    return text if text.startswith("/") else target_arg(text)


def steps_arg(text: str) -> int:
    try:
        number = int(text, 10)
    except ValueError:
        raise UsageError(f"--steps wants a number, not {shown(text)}") from None
    if not 1 <= number <= 10000:
        raise UsageError(f"--steps must be 1 or more (got {number})")
    return number


def entries_arg(text: str) -> int:
    try:
        number = int(text, 10)
    except ValueError:
        raise UsageError(f"--entries wants a number, not {shown(text)}") from None
    if not 0 <= number <= 100000:
        raise UsageError(f"--entries must be between 0 and 100000 (got {number})")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bootagent",
        description="Boot environments, checkpoints, rollback and roll-forward for ZFS-root systems.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bootagent {__version__}")
    _global_options(parser, default=None)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    sub.required = True

    def verb(name: str, handler: Handler | None, help: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        _global_options(p, default=argparse.SUPPRESS)
        p.set_defaults(handler=handler)
        return p

    p = verb("list", cmd_list, "list boot environments and their snapshots")
    p.add_argument("environment", nargs="?", type=environment_arg, help="show only this environment")
    p.add_argument("-s", "--snapshots", action="store_true", help="include snapshots")
    p.add_argument(
        "--history", action="store_true", help="show the rollback history (steps) of an environment"
    )

    p = verb("checkpoint", cmd_checkpoint, "snapshot an environment (default: the running one)")
    p.add_argument("environment", nargs="?", type=environment_arg)
    p.add_argument("-n", "--name", type=snapshot_name_arg, help="snapshot name (default: cp-YYYYMMDD-HHMMSS)")
    p.add_argument("-d", "--description", default="", help="free text, any characters but control characters")
    p.add_argument(
        "--created-by",
        choices=[c.value for c in (CreatedBy.MANUAL, CreatedBy.PACKAGE_MANAGER, CreatedBy.AUTOMATIC)],
        default=CreatedBy.MANUAL.value,
        help="who made it (prune only removes automatic and package-manager checkpoints by default)",
    )

    p = verb("create", cmd_create, "create a new environment from an environment or a snapshot (a clone)")
    p.add_argument("name", type=environment_arg)
    p.add_argument(
        "source", nargs="?", type=target_arg, help="ENV or ENV@SNAPSHOT (default: the running environment)"
    )
    p.add_argument("-d", "--description", default="")
    p.add_argument("--activate", action="store_true", help="also make it the default")

    p = verb("activate", cmd_activate, "make an environment the default, or (--once) the next boot only")
    p.add_argument("environment", type=environment_arg)
    p.add_argument(
        "--once", action="store_true", help="next boot only (a trial); later boots use the default"
    )

    p = verb(
        "rollback",
        cmd_rollback,
        "go back to an earlier state; by default a new environment is made and activated, "
        "the current one kept",
    )
    p.add_argument("environment", nargs="?", type=environment_arg, help="default: the running environment")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=steps_arg, help="how many states back (default 1; see 'list --history')")
    g.add_argument(
        "--to", metavar="SNAPSHOT", type=history_target_arg, help="a snapshot in the history, or ENV@SNAPSHOT"
    )
    p.add_argument("--name", type=environment_arg, help="name of the new environment (default ENV-SNAPSHOT)")
    p.add_argument(
        "--destroy-newer",
        action="store_true",
        help="roll back IN PLACE, destroying every newer snapshot (no roll-forward afterwards)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")

    p = verb("rollforward", cmd_rollforward, "undo a rollback: go forward again (default: all the way)")
    p.add_argument("environment", nargs="?", type=environment_arg)
    p.add_argument("--steps", type=steps_arg, help="how many states forward (default: back to the latest)")

    p = verb("destroy", cmd_destroy, "destroy environments or snapshots (protected ones are refused)")
    p.add_argument("targets", nargs="+", metavar="ENV[@SNAPSHOT]", type=target_arg)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = verb("prune", cmd_prune, "remove old automatic checkpoints by count, age and free space")
    p.add_argument("--dry-run", action="store_true", help="only show what would be removed")

    p = verb("mount", cmd_mount, "mount an environment or snapshot read-only")
    p.add_argument("target", metavar="ENV[@SNAPSHOT]", type=target_arg)
    p.add_argument("path", nargs="?", help="an empty directory (default /run/bootagent/mnt/TARGET)")

    p = verb("umount", cmd_umount, "unmount what 'bootagent mount' mounted")
    p.add_argument("target", metavar="ENV[@SNAPSHOT]|PATH", type=target_or_path_arg)

    p = verb("diff", cmd_diff, "list the files that differ between a snapshot and a later state")
    p.add_argument("older", metavar="ENV@SNAPSHOT", type=snapshot_target_arg)
    p.add_argument("newer", metavar="ENV[@SNAPSHOT]", type=target_arg)

    p = verb("keep", cmd_keep, "set or clear the keep flag (kept items are never destroyed or pruned)")
    p.add_argument("target", metavar="ENV[@SNAPSHOT]", type=target_arg)
    p.add_argument("--off", action="store_true", help="clear the flag")

    p = verb("mark-good", cmd_mark_good, "record that this boot is good (run after health checks)")
    p.add_argument("environment", nargs="?", type=environment_arg)

    p = verb(
        "boot-start",
        cmd_boot_start,
        "early in every boot (bootagent-boot-start.service): re-arm boot counting and the boot watchdog",
    )
    p.set_defaults(actor=Actor.AUTOMATIC)
    p = verb(
        "health",
        cmd_health,
        "run the health checks in /etc/bootagent/health.d (bootagent-health.service, before "
        "boot-complete.target); a failed required check fails the boot",
    )
    p.set_defaults(actor=Actor.AUTOMATIC)
    p = verb(
        "bless",
        cmd_bless,
        "record a good boot (bootagent-bless.service, after boot-complete.target): last-good, the boot "
        "counter cleared, an unattended recovery ended",
    )
    p.set_defaults(actor=Actor.AUTOMATIC)

    p = verb("factory", None, "the factory baselines a reset goes back to: seal one, list them")
    fsub = p.add_subparsers(dest="factory_verb", metavar="ACTION", parser_class=Parser)
    fsub.required = True
    q = fsub.add_parser("seal", help="copy an environment and the config datasets into a new baseline")
    _global_options(q, default=argparse.SUPPRESS)
    q.set_defaults(handler=cmd_factory_seal)
    q.add_argument("--from", dest="source", type=environment_arg, help="default: the running environment")
    q.add_argument("--release", type=environment_arg, help="its name (default: VERSION_ID-YYYYMMDD)")
    q.add_argument("--replace", action="store_true", help="seal a release that has a baseline again")
    q = fsub.add_parser("list", help="the sealed baselines")
    _global_options(q, default=argparse.SUPPRESS)
    q.set_defaults(handler=cmd_factory_list)

    p = verb(
        "factory-reset",
        cmd_factory_reset,
        "ask for a factory reset at the next boot (the early-boot agent carries it out)",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--keep-data", action="store_true", help="keep the customer datasets, untouched")
    g.add_argument(
        "--erase-all", action="store_true", help="erase everything but the baseline and the journal"
    )
    g.add_argument("--cancel", action="store_true", help="withdraw a reset asked for (before it begins)")
    p.add_argument("--baseline", type=environment_arg, help="the release to go back to (default: the newest)")
    p.add_argument("--secure", action="store_true", help="erase-all: also overwrite and trim the free space")
    p.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")
    p.add_argument("--reboot", action="store_true", help="reboot now to carry it out")

    transfer.add_parsers(
        verb,
        environment_arg=environment_arg,
        target_arg=target_arg,
        global_options=_global_options,
        parser_class=Parser,
        handlers={"export": cmd_export, "import": cmd_import},
    )

    p = verb("status", cmd_status, "pool health, boot choices and the latest journal entries")
    p.add_argument(
        "-n", "--entries", type=entries_arg, default=10, help="journal entries to show (default 10)"
    )
    p.add_argument(
        "--textfile",
        metavar="PATH.prom",
        help="write the status as Prometheus metrics to this file (node_exporter's textfile collector)",
    )

    p = verb(
        "grub-menu",
        None,  # needs no pool context: main() calls cmd_grub_menu
        "print bootagent's GRUB menu entries (what /etc/grub.d/42_bootagent adds to grub.cfg)",
    )
    p.set_defaults(needs_pool=False)

    p = verb(
        "apt-hook",
        None,  # apt's hooks must never be in apt's way: main() calls cmd_apt_hook, which handles its errors
        "apt's hooks (/etc/apt/apt.conf.d/80bootagent): one checkpoint per apt run, described with the "
        "packages it changes, and the run's outcome",
    )
    p.add_argument("stage", choices=["pre-invoke", "packages", "post-invoke"])
    p.set_defaults(needs_pool=False, apt_hook=True)

    p = verb(
        "setup",
        None,  # needs no pool context: it is what makes one (main() calls cmd_setup)
        "adopt this system: inspect its pools and layout, write the config, create the state dataset, "
        "install the GRUB integration; says what it changes (--dry-run: only shows it)",
    )
    p.add_argument("--dry-run", action="store_true", help="only show what would be changed")
    p.set_defaults(needs_pool=False, setup=True)
    return parser


# --- confirmation -------------------------------------------------------------------------------------
def confirm(word: str, question: str, *, assume_yes: bool, stdin: TextIO | None = None) -> None:
    """Ask for a typed confirmation word when a person is there; without one, require --yes."""
    if assume_yes:
        return
    stream = stdin or sys.stdin
    if not stream.isatty():
        raise RefusedError(
            f"{question} needs a confirmation and there is no terminal to ask",
            hint="add --yes to confirm non-interactively",
        )
    sys.stderr.write(f"{question}\nType {word} to confirm: ")
    sys.stderr.flush()
    answer = stream.readline().strip()
    if answer != word:
        raise RefusedError("not confirmed; nothing was changed")


# --- verbs --------------------------------------------------------------------------------------------
def cmd_list(ctx: Context, args: argparse.Namespace) -> Output:
    inv = ctx.envs.inventory()
    if args.history:
        env = inv.find(args.environment) if args.environment else inv.current()
        hist = inv.history(env)
        steps = [{"step": i, **render.snapshot_json(s)} for i, s in enumerate(hist, 1)]
        return Output({"environment": env.name, "history": steps}, render.history_text(inv, env))
    if args.environment:
        env = inv.find(args.environment)
        data = render.environment_json(inv, env)
        filtered = replace(inv, environments=(env,))
        return Output(data, render.inventory_text(filtered, snapshots=True))
    return Output(render.inventory_json(inv), render.inventory_text(inv, snapshots=args.snapshots))


def cmd_checkpoint(ctx: Context, args: argparse.Namespace) -> Output:
    snap = ctx.envs.checkpoint(
        args.environment, name=args.name, description=args.description, created_by=CreatedBy(args.created_by)
    )
    return Output(render.snapshot_json(snap), f"created checkpoint {snap.label}")


def cmd_create(ctx: Context, args: argparse.Namespace) -> Output:
    env = ctx.envs.create(args.name, args.source, description=args.description)
    text = f"created boot environment {env.name} from {env.origin}"
    if args.activate:
        ctx.envs.activate(env.name)
        text += f"; {env.name} is now the default"
    inv = ctx.envs.inventory()
    return _environments_changed(ctx, Output(render.environment_json(inv, inv.find(env.name)), text))


def cmd_activate(ctx: Context, args: argparse.Namespace) -> Output:
    env = ctx.envs.activate(args.environment, once=args.once)
    inv = ctx.envs.inventory()
    text = (
        f"{env.name} boots next time only; later boots use {inv.state.active or 'the default'}"
        if args.once
        else f"{env.name} is now the default boot environment"
    )
    return Output(render.environment_json(inv, inv.find(env.name), snapshots=False), text)


def cmd_rollback(ctx: Context, args: argparse.Namespace) -> Output:
    if args.destroy_newer:
        inv = ctx.envs.inventory()
        env = inv.find(args.environment) if args.environment else inv.current()
        target = ctx.envs.resolve_history_target(inv, env, steps=args.steps, to=args.to)
        newer = [s.name for s in env.snapshots if s.createtxg > target.createtxg]
        confirm(
            "ROLLBACK",
            f"Roll {env.name} back IN PLACE to {target.label}: its current state"
            + (f" and the snapshots {', '.join(newer)}" if newer else "")
            + " will be destroyed; roll-forward will not be possible.",
            assume_yes=args.yes,
        )
    result = ctx.envs.rollback(
        args.environment, steps=args.steps, to=args.to, destructive=args.destroy_newer, new_name=args.name
    )
    if result.destructive:
        text = f"rolled {result.environment} back to {result.target.label} in place"
        if result.destroyed:
            text += "; destroyed " + ", ".join(result.destroyed)
    else:
        text = (
            f"created {result.environment} from {result.target.label} and made it the default; "
            "reboot to use it ('bootagent rollforward' undoes this)"
        )
        return _environments_changed(ctx, Output(render.rollback_json(result), text))
    return Output(render.rollback_json(result), text)


def cmd_rollforward(ctx: Context, args: argparse.Namespace) -> Output:
    result = ctx.envs.roll_forward(args.environment, steps=args.steps)
    verb = "created" if result.created else "activated"
    text = f"{verb} {result.environment} ({result.source}); it is now the default; reboot to use it"
    output = Output(render.rollforward_json(result), text)
    return _environments_changed(ctx, output) if result.created else output


def cmd_destroy(ctx: Context, args: argparse.Namespace) -> Output:
    inv = ctx.envs.inventory()
    ctx.envs.check_destroyable(inv, args.targets)  # refuse before asking for a confirmation
    confirm("destroy", f"Destroy {', '.join(args.targets)}?", assume_yes=args.yes)
    names = ctx.envs.destroy(args.targets)
    output = Output({"destroyed": names}, "destroyed " + ", ".join(names))
    return _environments_changed(ctx, output) if any("@" not in n for n in names) else output


def cmd_prune(ctx: Context, args: argparse.Namespace) -> Output:
    plan = ctx.envs.prune(dry_run=args.dry_run)
    data = render.prune_json(plan, dry_run=args.dry_run)
    if not plan.items:
        text = "nothing to prune"
    else:
        lead = "would destroy" if args.dry_run else "destroyed"
        text = "\n".join(
            f"{lead} {i.snapshot.label} ({i.reason.value}, {render.human_size(i.snapshot.used)})"
            for i in plan.items
        )
    if not plan.space_goal_met:
        text += (
            f"\nwarning: free space stays below {ctx.config.retention.min_free_percent}% "
            "(the remaining checkpoints are protected or kept by min_keep)"
        )
    return Output(data, text)


def cmd_mount(ctx: Context, args: argparse.Namespace) -> Output:
    path = ctx.envs.mount(args.target, args.path)
    return Output({"target": args.target, "path": path}, f"mounted {args.target} read-only at {path}")


def cmd_umount(ctx: Context, args: argparse.Namespace) -> Output:
    path = ctx.envs.umount(args.target)
    return Output({"path": path}, f"unmounted {path}")


def cmd_diff(ctx: Context, args: argparse.Namespace) -> Output:
    entries = ctx.envs.diff(args.older, args.newer)
    lines = [f"{e.change.value}\t{e.path}" + (f" -> {e.new_path}" if e.new_path else "") for e in entries]
    return Output(render.diff_json(entries), "\n".join(lines) if lines else "no differences")


def cmd_keep(ctx: Context, args: argparse.Namespace) -> Output:
    ctx.envs.set_keep(args.target, not args.off)
    state = "cleared" if args.off else "set"
    return Output({"target": args.target, "keep": not args.off}, f"keep flag {state} on {args.target}")


def cmd_mark_good(ctx: Context, args: argparse.Namespace) -> Output:
    env = ctx.envs.mark_good(args.environment)
    return Output(
        {"environment": env.name, "last_good": render.iso(env.last_good)}, f"{env.name} marked good"
    )


def _system(ctx: Context) -> RunningSystem:
    """The running system, saying what it does at once, not at the end (a failed health check reboots the
    machine right after saying why): stdout for what is done, stderr for what went wrong (the units send
    stderr to the console too)."""

    def to(stream: TextIO) -> Callable[[str], None]:
        def write(message: str) -> None:
            try:
                stream.write(message + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

        return write

    return replace(ctx.recovery(ctx), say=to(sys.stdout), warn=to(sys.stderr))


def cmd_boot_start(ctx: Context, args: argparse.Namespace) -> Output:
    system = _system(ctx)
    factory.at_boot_start(ctx, system.runner, system.warn)
    record = lifecycle.boot_start(system)
    return Output(
        {"environment": record.environment, "tries": record.tries, "repaired": record.repaired},
        f"boot counting is armed for this boot of {record.environment}",
    )


def cmd_health(ctx: Context, args: argparse.Namespace) -> Output:
    report = lifecycle.run_health(_system(ctx))
    data = {
        "passed": report.passed,
        "checks": [
            {"name": r.name, "need": r.need.value, "passed": r.passed, "detail": r.detail}
            for r in report.results
        ],
        "skipped": list(report.skipped),
    }
    return Output(data, health.summary(report))


def cmd_bless(ctx: Context, args: argparse.Namespace) -> Output:
    system = _system(ctx)
    done = lifecycle.bless(system)
    lines = [f"{done.environment}: this boot is good; the boot counter is 0"]
    refreshed = factory.after_reset(ctx, system.warn)
    if refreshed:
        lines.append(refreshed)
    if done.recovered is not None:
        lines.append(done.recovered.describe())
    if done.made_default:
        lines.append(f"{done.environment} is the default now")
    if done.watchdog:
        lines.append(done.watchdog)
    data = {
        "environment": done.environment,
        "made_default": done.made_default,
        "recovered": done.recovered.describe() if done.recovered else None,
    }
    return Output(data, "\n".join(lines))


def cmd_factory_seal(ctx: Context, args: argparse.Namespace) -> Output:
    done = factory.seal_baseline(ctx, args.source, args.release, args.replace)
    return Output(done.data, done.text)


def cmd_factory_list(ctx: Context, args: argparse.Namespace) -> Output:
    done = factory.list_baselines(ctx)
    return Output(done.data, done.text)


def cmd_factory_reset(ctx: Context, args: argparse.Namespace) -> Output:
    if args.cancel:
        done = factory.cancel(ctx)
        return Output(done.data, done.text)
    mode = ResetMode.ERASE_ALL if args.erase_all else ResetMode.KEEP_DATA
    if args.secure and mode is not ResetMode.ERASE_ALL:
        raise UsageError("--secure goes with --erase-all (a keep-data reset erases no data)")
    planned = factory.plan_text(ctx, mode, args.baseline, args.secure)
    confirm(factory.WORDS[mode], "\n".join(planned[0]), assume_yes=args.yes)
    done = factory.schedule(ctx, mode, planned, release=args.baseline, secure=args.secure, actor=Actor.CLI)
    if args.reboot:
        run(["systemctl", "reboot"], timeout=60)
        return Output({**done.data, "rebooting": True}, done.text + "\nrebooting now")
    return Output(done.data, done.text + "\nreboot to carry it out (or give --reboot)")


def cmd_export(ctx: Context, args: argparse.Namespace) -> Output:
    done = transfer.cmd_export(
        ctx, args, runner=ctx.runner, streams=ctx.streams, stdout=getattr(args, "stdout_bytes", None)
    )
    # no environment comes or goes (a snapshot at most, which GRUB's menu does not list): no update-grub
    return Output(done.data, done.text)


def cmd_import(ctx: Context, args: argparse.Namespace) -> Output:
    done = transfer.cmd_import(ctx, args, runner=ctx.runner, streams=ctx.streams)
    return _environments_changed(ctx, Output(done.data, done.text))


def cmd_status(ctx: Context, args: argparse.Namespace) -> Output:
    from bootagent.cli.retention import retention_status
    from bootagent.fleet import STATUS_SCHEMA

    inv = ctx.envs.inventory()
    entries = ctx.journal.entries(args.entries)
    pending = ctx.journal.pending()
    damage = ctx.journal.damage()
    snapshots = [s for e in inv.environments for s in e.snapshots]
    by_origin: dict[str, int] = {}
    for snap in snapshots:
        by_origin[snap.created_by.value] = by_origin.get(snap.created_by.value, 0) + 1
    good = [e.last_good for e in inv.environments if e.last_good is not None]
    data = {
        "schema_version": STATUS_SCHEMA,
        "version": __version__,
        "pool": render.inventory_json(inv)["pool"],
        "environments": len(inv.environments),
        "checkpoints": by_origin,
        "last_checkpoint_epoch": max((s.created for s in snapshots), default=None),
        "last_good_epoch": max(good, default=None),
        "last_export_epoch": max((e.last_export for e in inv.environments if e.last_export), default=None),
        "active": inv.state.active,
        "next_boot": inv.state.next_once,
        "running": inv.state.running,
        "last_known_good": inv.state.last_known_good,
        "grubenv_damaged": inv.boot_choice.grubenv_damaged,
        "journal": [render.journal_json(e) for e in entries],
        "pending": [render.journal_json(e) for e in pending],
        "journal_damage": {
            "unreadable": damage.unreadable,
            "offsets": list(damage.offsets),
            "torn_tail": damage.torn_tail,
        },
    }
    lines = [
        f"pool:            {inv.pool.name} {inv.pool.health.value}"
        + (" (read-only)" if inv.pool.readonly else ""),
        f"free:            {render.human_size(inv.pool.free)} of {render.human_size(inv.pool.size)}",
        f"running:         {inv.state.running or '-'}",
        f"default:         {inv.state.active or '-'}",
        f"next boot only:  {inv.state.next_once or '-'}",
        f"last-known-good: {inv.state.last_known_good or '-'}",
    ]
    if inv.boot_choice.grubenv_damaged:
        lines.append(f"warning: {ctx.config.grubenv} is damaged; its values were ignored")
    if damage.damaged:
        lines.append(f"warning: {ctx.journal.path}: {damage.summary()}")
    counting = recovery_status(ctx)
    data["boot_counting"] = counting.data
    lines.extend(counting.lines)
    retention = retention_status(ctx, inv)
    data["retention"] = retention.data
    lines.extend(retention.lines)
    reset_data, reset_lines = factory.reset_status(ctx)
    data["factory_reset"] = reset_data
    lines.extend(reset_lines)
    if pending:
        lines.append("operations cut short (no outcome recorded):")
        lines.extend(f"  {render.when(e.time)} {e.action} {e.target}" for e in pending)
    lines.append("")
    lines.append(render.journal_text(entries) if entries else "journal: empty")
    if args.textfile:
        write_textfile(args.textfile, data)
        return Output(data, f"wrote {args.textfile}")
    return Output(data, "\n".join(lines))


def write_textfile(path: str, data: dict[str, Any]) -> None:
    """The status as Prometheus metrics, replacing `path` in one rename (for node_exporter)."""
    import time

    from bootagent.fleet import metrics
    from bootagent.fleet import render as render_metrics
    from bootagent.fsutil import atomic_write

    if not path.endswith(".prom"):
        raise UsageError(
            f"{path}: node_exporter reads only files ending in .prom", hint="name it bootagent.prom"
        )
    try:
        atomic_write(path, render_metrics(metrics(data, now=time.time())).encode())
    except OSError as exc:
        raise BootagentError(
            f"cannot write {path}: {exc.strerror or exc}", hint="is the directory there?"
        ) from exc


# --- entry point --------------------------------------------------------------------------------------
def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="bootagent: %(levelname)s: %(message)s"
        if not debug
        else "%(relativeCreated)7.0f ms %(levelname)s %(name)s: %(message)s",  # a timeline of the run
        stream=sys.stderr,
    )


def _default_backend() -> ZfsBackend:
    from bootagent.zfs.backend import ZfsSystem

    system: ZfsBackend = ZfsSystem()
    return system


def cmd_grub_menu(
    args: argparse.Namespace, backend: Callable[[], ZfsBackend], out: TextIO, err: TextIO
) -> int:
    """GRUB's menu never waits on a strict config: problems are warnings, the defaults are used."""
    from bootagent.grub.generate import MenuSources, generate, write

    loaded = load_config(args.config, strict=False)
    config = replace(loaded.config, pool=args.pool) if args.pool else loaded.config
    problems = [f"configuration: {p} (the default is used)" for p in loaded.problems]
    menu = generate(config, MenuSources(zfs=backend()), problems)
    write(menu, out, err)
    return int(ExitCode.OK)


def cmd_apt_hook(
    args: argparse.Namespace,
    backend: Callable[[], ZfsBackend],
    menu: Callable[[Config], BootMenu],
    runner: Runner,
    err: TextIO,
    stdin: TextIO | None = None,
) -> int:
    """apt's hooks: a failure warns and lets apt go on (exit 0) unless apt.stop_on_failure is set."""
    from bootagent.apt import hook as apt
    from bootagent.apt.protocol import parse

    stop = False
    try:
        # apt writes the package list to the hook: read all of it first, whatever happens next
        hook_input = parse(stdin or sys.stdin) if args.stage == "packages" else None
        if apt.in_chroot():
            return int(ExitCode.OK)  # an image built in a chroot: not the running system's apt run
        loaded = load_config(args.config, strict=False)
        config = loaded.config
        for problem in loaded.problems:
            err.write(f"bootagent: warning: configuration: {problem} (the default is used)\n")
        stop = config.apt.stop_on_failure
        if not config.apt.checkpoint:
            return int(ExitCode.OK)
        zfs = backend()
        root = zfs.mounts().get("/")
        if not root:
            return int(ExitCode.OK)  # the root is not on ZFS: nothing to do
        ctx = build_context(config, zfs, pool=args.pool, menu=menu(config), actor=Actor.AUTOMATIC)
        hook = apt.AptHook(ctx.envs, apt.current_run(), kernels=apt.installed_kernels)
        if not hook.is_environment():
            return int(ExitCode.OK)  # the root is on ZFS but no boot environment
        if hook_input is not None:
            outcome = hook.packages(hook_input)
        elif args.stage == "pre-invoke":
            outcome = hook.pre_invoke()
        else:
            audit = runner(["dpkg", "--audit"], check=False)
            outcome = hook.post_invoke(audit.stdout)
            if outcome.kernel is not None:
                refreshed = ctx.menu.refresh()
                if refreshed.warning:
                    err.write(f"bootagent: warning: {refreshed.warning}\n")
        err.write(f"bootagent: {outcome.text}\n")
        return int(ExitCode.OK)
    except Exception as exc:  # any failure at all: apt's run is more important than its checkpoint
        message = exc.message if isinstance(exc, BootagentError) else f"{type(exc).__name__}: {exc}"
        err.write(f"bootagent: warning: apt hook {args.stage}: {message}\n")
        if isinstance(exc, BootagentError) and exc.hint:
            err.write(f"hint: {exc.hint}\n")
        if stop:
            err.write("bootagent: apt.stop_on_failure is set in the config: apt stops here\n")
            return int(ExitCode.REFUSED)
        if args.stage != "post-invoke":
            err.write("bootagent: apt goes on without a checkpoint\n")
        return int(ExitCode.OK)


def cmd_setup(args: argparse.Namespace, backend: Callable[[], ZfsBackend], runner: Runner) -> Output:
    from bootagent.setup import facts
    from bootagent.setup.apply import apply
    from bootagent.setup.inspect import propose

    loaded = load_config(args.config, strict=True)  # a broken file is fixed by hand first
    proposal = propose(facts.gather(runner), loaded.config, exists=facts.file_exists)
    if proposal.refusals:
        raise RefusedError(
            "bootagent cannot serve this system's layout: " + "; ".join(proposal.refusals),
            hint="nothing was changed",
        )
    changes = [f"{s.key}: {s.value}  ({s.why})" for s in proposal.settings]
    if proposal.state_dataset:
        changes.append(f"create the state dataset {proposal.state_dataset}")
    if proposal.grubenv_missing:
        changes.append(f"create GRUB's environment block {proposal.grubenv}")
    done = (
        [] if args.dry_run else apply(proposal, config_path=Path(loaded.path), zfs=backend(), runner=runner)
    )
    lines = ["this system:", *(f"  {n}" for n in proposal.notes)]
    if proposal.customer_candidates:
        lines += [
            "looks like customer data (proposed, not set: add to customer_datasets, or set "
            "org.bootagent:customer=on, to have an erase-all reset empty it):",
            *(f"  {c}" for c in proposal.customer_candidates),
        ]
    if args.dry_run:
        lines += ["would change:", *(f"  {c}" for c in changes)] if changes else ["nothing to change"]
    else:
        lines += ["changed:", *(f"  {d}" for d in done)] if done else ["nothing to change: already set up"]
    data = {
        "pool": proposal.pool,
        "environment": proposal.environment,
        "boot_pool": proposal.boot_pool,
        "grubenv": proposal.grubenv,
        "settings": [{"key": s.key, "value": s.value, "why": s.why} for s in proposal.settings],
        "create_state_dataset": proposal.state_dataset,
        "create_grubenv": proposal.grubenv_missing,
        "customer_candidates": list(proposal.customer_candidates),
        "notes": list(proposal.notes),
        "dry_run": args.dry_run,
        "changed": done,
    }
    return Output(data, "\n".join(lines))


def _text_streams(out: TextIO, err: TextIO) -> None:
    """Whatever a name or a zfs message holds (undecodable bytes arrive as surrogates), printing it never
    fails: such characters are written as backslash escapes."""
    for stream in (out, err):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main(
    argv: Sequence[str] | None = None,
    *,
    backend: Callable[[], ZfsBackend] = _default_backend,
    menu: Callable[[Config], BootMenu] = lambda config: boot_menu(config.grub_update),
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    recovery: Callable[[Context], RunningSystem] | None = None,
    runner: Runner = run,
    streams: Streams | None = None,
    stdout_bytes: IO[bytes] | None = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    _text_streams(out, err)
    raw = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in raw
    debug = "--debug" in raw
    said = out  # where the result (or the error) is said: stderr when stdout carries an export's stream
    try:
        try:
            args = build_parser().parse_args(raw)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else int(ExitCode.USAGE)
        _setup_logging(args.debug)
        args.stdout_bytes = stdout_bytes  # export to '-': where the stream goes (default: stdout's bytes)
        if getattr(args, "stdout_is_data", False) and args.location == "-":
            said = err
        result: Output
        if getattr(args, "apt_hook", False):
            return cmd_apt_hook(args, backend, menu, runner, err)
        if getattr(args, "setup", False):
            result = cmd_setup(args, backend, runner)
        elif getattr(args, "store", False):
            done = transfer.cmd_store(args, runner, confirm)
            result = Output(done.data, done.text)
        elif not getattr(args, "needs_pool", True):
            return cmd_grub_menu(args, backend, out, err)
        else:
            config = load_config(args.config, strict=True).config
            ctx = build_context(
                config, backend(), pool=args.pool, menu=menu(config), actor=getattr(args, "actor", Actor.CLI)
            )
            if recovery is not None:
                ctx = replace(ctx, recovery=recovery)
            if runner is not run or streams is not None:
                ctx = replace(ctx, runner=runner, streams=streams or ctx.streams)
            result = args.handler(ctx, args)
            if ctx.envs.resolutions:  # operations a power cut left pending, closed before this one
                earlier = tuple(r.describe() for r in ctx.envs.resolutions)
                result = replace(result, warnings=(*earlier, *result.warnings))
    except BootagentError as exc:
        if want_json:
            json.dump(
                {"error": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)},
                said,
                ensure_ascii=False,
            )
            said.write("\n")
        err.write(f"bootagent: error: {exc.message}\n")
        if exc.hint:
            err.write(f"hint: {exc.hint}\n")
        if debug:
            import traceback

            traceback.print_exc(file=err)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err.write("bootagent: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as exc:
        if debug:
            raise
        err.write(f"bootagent: internal error: {type(exc).__name__}: {exc}\n")
        err.write("hint: run again with --debug for the traceback, and report it\n")
        return int(ExitCode.BUG)
    try:
        for warning in result.warnings:
            err.write(f"bootagent: warning: {warning}\n")
        if want_json or args.json:
            json.dump(result.data, said, indent=2, ensure_ascii=False)
            said.write("\n")
        else:
            said.write(result.text + "\n")
        said.flush()
    except BrokenPipeError:
        return _broken_pipe()
    return int(ExitCode.OK)


def _broken_pipe() -> int:
    """The reader of our output went away (`bootagent list | head`). Point stdout at /dev/null so the
    interpreter's own flush at exit does not fail again."""
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
