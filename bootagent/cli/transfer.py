"""`bootagent export`, `bootagent import` and `bootagent store list|expire`: environments as ZFS send
streams to a file, standard output or a storage host, and back (bootagent.transfer)."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, TextIO

from bootagent.cli.context import Context
from bootagent.cli.render import human_size
from bootagent.errors import RefusedError, UsageError
from bootagent.names import validate_name
from bootagent.runner import Runner
from bootagent.transfer.side import ProcessStreams, Side, Streams
from bootagent.transfer.store import DEFAULT_RETENTION_HOURS, expire, list_store, plan_expiry
from bootagent.transfer.target import Stdio, StorageHost, parse_location


@dataclass(frozen=True)
class Result:
    data: dict[str, Any]
    text: str


def default_machine() -> str:
    """This machine's name on a storage host: the short host name."""
    name = socket.gethostname().split(".", 1)[0] or "localhost"
    return validate_name(name, what="machine name (from the host name; give --machine)")


def hours_arg(text: str) -> float:
    """48, 48h, 2d, 90m."""
    units = {"m": 1 / 60, "h": 1.0, "d": 24.0}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "h")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 48h, 2d or 90m") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the retention time must be positive")
    return value


def add_parsers(
    verb: Callable[..., argparse.ArgumentParser],
    *,
    environment_arg: Callable[[str], str],
    target_arg: Callable[[str], str],
    global_options: Callable[..., None],
    parser_class: type[argparse.ArgumentParser],
    handlers: Mapping[str, Callable[..., Any]],
) -> None:
    """The verbs, made with the main parser's `verb` factory and argument types."""

    p = verb(
        "export",
        handlers["export"],
        "send an environment (a new snapshot of it, or ENV@SNAPSHOT) as ZFS streams to a file, to "
        "standard output (-) or to a storage host (ssh://[USER@]HOST[:PORT]/DATASET)",
    )
    p.add_argument("target", metavar="ENV[@SNAPSHOT]", type=target_arg)
    p.add_argument("location", metavar="FILE|-|ssh://HOST/DATASET")
    p.add_argument(
        "--base", metavar="SNAPSHOT", help="file or -: send only the difference from this earlier snapshot"
    )
    p.add_argument("--full", action="store_true", help="storage host: refuse an incremental send")
    p.add_argument(
        "--as", dest="as_name", type=environment_arg, help="storage host: store it under this name"
    )
    p.add_argument("--machine", help="storage host: this machine's name there (default: the host name)")
    p.add_argument("--manifest", metavar="FILE", help="-: also write the manifest to this file")
    p.set_defaults(stdout_is_data=True)

    p = verb(
        "import",
        handlers["import"],
        "make a new environment from an export (a file, - for standard input, or "
        "ssh://HOST/STORE/MACHINE/ENV[@SNAPSHOT]); never replaces an existing one",
    )
    p.add_argument("location", metavar="FILE|-|ssh://HOST/STORE/MACHINE/ENV[@SNAPSHOT]")
    p.add_argument(
        "--name", type=environment_arg, help="the new environment's name (default: the exported one)"
    )
    p.add_argument("--manifest", metavar="FILE", help="-: check the stream against this manifest")
    p.add_argument(
        "--no-manifest",
        action="store_true",
        help="a file without its manifest: trust ZFS's own stream checksums only",
    )

    p = verb("store", None, "a storage host's exports: list them, remove the expired ones")
    ssub = p.add_subparsers(dest="store_verb", metavar="ACTION", parser_class=parser_class)
    ssub.required = True

    for name, help in (
        ("list", "what is stored, per machine and environment, with size and age"),
        ("expire", f"remove exports older than the retention time (default {DEFAULT_RETENTION_HOURS} h)"),
    ):
        q = ssub.add_parser(name, help=help, description=help)
        global_options(q, default=argparse.SUPPRESS)
        q.add_argument("store", metavar="ssh://HOST/DATASET|DATASET", help="a dataset here: run on the host")
        if name == "expire":
            q.add_argument(
                "--older-than",
                type=hours_arg,
                default=float(DEFAULT_RETENTION_HOURS),
                metavar="TIME",
                help=f"48h, 2d, 90m (default {DEFAULT_RETENTION_HOURS}h)",
            )
            q.add_argument("--dry-run", action="store_true", help="only show what would be removed")
            q.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")
        q.set_defaults(needs_pool=False, store=True)


def _sides(runner: Runner) -> tuple[Side, Any]:
    return Side(runner), lambda host: Side(runner, host)


def cmd_export(
    ctx: Context,
    args: argparse.Namespace,
    *,
    runner: Runner,
    streams: Streams | None = None,
    stdout: IO[bytes] | None = None,
    progress: TextIO | None = None,
) -> Result:
    from bootagent.transfer.export import Exporter

    location = parse_location(args.location)
    local, remote = _sides(runner)
    if isinstance(location, Stdio) and stdout is None:
        if sys.stdout.isatty():
            raise RefusedError("a ZFS stream is not for a terminal", hint="redirect it: > FILE, or | ssh ...")
        stdout = sys.stdout.buffer
    exporter = Exporter(
        ctx.envs,
        local,
        streams or ProcessStreams(),
        remote=remote,
        machine=args.machine or default_machine(),
        progress_out=progress or sys.stderr,
        stdout=stdout,
    )
    done = exporter.export(
        args.target,
        location,
        base=args.base,
        full=args.full,
        as_name=args.as_name,
        manifest_path=args.manifest,
    )
    lines = [f"exported {done.manifest.environment}@{done.manifest.snapshot} to {done.location}"]
    lines += [f"  {p.describe()}" for p in done.parts]
    lines.append(f"  sent {done.bytes} bytes ({human_size(done.bytes)})")
    data = {
        "location": done.location,
        "manifest": __import__("json").loads(done.manifest.to_json()),
        "bytes": done.bytes,
        "parts": [
            {
                "part": p.part,
                "source": p.source,
                "destination": p.destination,
                "bytes": p.bytes,
                "seconds": round(p.seconds, 3),
                "incremental_from": p.base,
                "already_stored": p.skipped,
                "resumed": p.resumed,
            }
            for p in done.parts
        ],
    }
    return Result(data, "\n".join(lines))


def cmd_import(
    ctx: Context,
    args: argparse.Namespace,
    *,
    runner: Runner,
    streams: Streams | None = None,
    stdin: IO[bytes] | None = None,
    progress: TextIO | None = None,
) -> Result:
    from bootagent.transfer.importer import Importer

    location = parse_location(args.location)
    if args.no_manifest and args.manifest:
        raise UsageError("--manifest and --no-manifest contradict each other")
    local, remote = _sides(runner)
    if isinstance(location, Stdio) and stdin is None:
        stdin = sys.stdin.buffer
    importer = Importer(
        ctx.envs,
        local,
        streams or ProcessStreams(),
        remote=remote,
        progress_out=progress or sys.stderr,
        stdin=stdin,
    )
    done = importer.import_(
        location, name=args.name, manifest_path=args.manifest, no_manifest=args.no_manifest
    )
    data = {
        "environment": done.environment,
        "dataset": done.dataset,
        "snapshot": done.snapshot,
        "bytes": done.bytes,
        "seconds": round(done.seconds, 3),
        "clone_of": done.incremental_from,
    }
    text = done.describe() + f"\nboot it with 'bootagent activate {done.environment}' (or from the boot menu)"
    return Result(data, text)


def _store_side(text: str, runner: Runner) -> tuple[Side, str, str]:
    if text.startswith("ssh://"):
        location = parse_location(text)
        assert isinstance(location, StorageHost)
        return Side(runner, location), location.dataset, str(location)
    if text.startswith("/") or "@" in text or not text:
        raise UsageError(f"{text!r} is not a dataset", hint="give ssh://HOST/DATASET, or DATASET on the host")
    return Side(runner), text, text


Confirm = Callable[..., None]


def cmd_store(
    args: argparse.Namespace, runner: Runner, confirm: Confirm, *, now: float | None = None
) -> Result:
    side, store, label = _store_side(args.store, runner)
    now = time.time() if now is None else now
    exports, partial = list_store(side, store)
    rows = [
        {
            "machine": e.machine,
            "environment": e.environment,
            "snapshot": e.snapshot,
            "exported": e.exported,
            "age_seconds": None if e.exported is None else int(now - e.exported),
            "used": e.used,
            "referenced": e.referenced,
            "complete": e.complete,
        }
        for e in exports
    ]
    if args.store_verb == "list":
        lines = [f"{'MACHINE':<16} {'ENVIRONMENT':<24} {'SNAPSHOT':<28} {'SIZE':>8}  AGE"]
        for e in exports:
            age = "incomplete" if e.exported is None else _age(now - e.exported)
            lines.append(
                f"{e.machine:<16} {e.environment:<24} {e.snapshot:<28} {human_size(e.referenced):>8}  {age}"
            )
        if not exports:
            lines = [f"nothing is stored in {label}"]
        lines += [f"interrupted receive (the next export resumes it): {p.dataset}" for p in partial]
        return Result(
            {"store": label, "exports": rows, "interrupted": [p.dataset for p in partial]}, "\n".join(lines)
        )
    doomed = plan_expiry(exports, now=now, retention_hours=args.older_than)
    names = [
        f"{e.machine}/{e.environment}@{e.snapshot} ({_age(now - (e.exported or now))} old)" for e in doomed
    ]
    data: dict[str, Any] = {"store": label, "older_than_hours": args.older_than, "expired": names}
    if not doomed:
        return Result(
            {**data, "destroyed": []}, f"nothing in {label} is older than {_age(args.older_than * 3600)}"
        )
    if args.dry_run:
        return Result({**data, "destroyed": []}, "would remove:\n" + "\n".join(f"  {n}" for n in names))
    confirm(
        "EXPIRE",
        f"remove {len(doomed)} export(s) from {label}:\n" + "\n".join(f"  {n}" for n in names),
        assume_yes=args.yes,
    )
    destroyed = expire(side, store, doomed)
    return Result({**data, "destroyed": destroyed}, "removed:\n" + "\n".join(f"  {n}" for n in destroyed))


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 72 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"
