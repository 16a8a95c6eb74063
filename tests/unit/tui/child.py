"""The menu in a child process, for the pty tests: `python -m tests.unit.tui.child OPTIONS`.

It runs `run_menu` (or `run_lines` with --lines / TERM=dumb) on its terminal against a FakeSession and
writes the MenuResult, the session's recorded calls and a few measurements as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bootagent.errors import RefusedError
from tests.unit.tui.fake_session import FakeSession


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=0)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--cols", type=int)
    parser.add_argument("--no-shell", action="store_true")
    parser.add_argument("--unicode", action="store_true")
    parser.add_argument("--color", action="store_true")
    parser.add_argument("--serial", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fail", action="append", default=[], help="OP: the first call of OP is refused")
    parser.add_argument("--crash", action="append", default=[], help="OP: the first call of OP raises a bug")
    parser.add_argument("--refuse", action="append", default=[], help="OP: every call of OP is refused")
    parser.add_argument("--lines", action="store_true")
    parser.add_argument(
        "--loop", action="store_true", help="start the menu again after it ends, until OUT.stop"
    )
    parser.add_argument("--debug", action="store_true", help="log to stderr (a file in the tests)")
    parser.add_argument("--esc-delay", type=float, default=0.35)
    parser.add_argument("--seal", action="store_true", help="seal a factory baseline first")
    parser.add_argument("--password", default="", help="protect the resets and the shell with it")
    parser.add_argument("--start-reset", default="", help="open on this reset's confirmation (GRUB's entry)")
    parser.add_argument("--environments", type=int, default=0, help="this many more environments")
    parser.add_argument("--snapshots", type=int, default=0, help="each of them with this many snapshots")
    args = parser.parse_args(argv)

    if args.debug:
        logging.basicConfig(level=logging.DEBUG, filename=args.out + ".log")
    os.environ["TZ"] = "UTC"
    time.tzset()
    from bootagent.tui.app import exit_name, run_menu
    from bootagent.tui.lines import run_lines
    from bootagent.tui.settings import MenuSettings

    fail: dict[str, Exception] = {
        op: RefusedError(f"{op} refused by the test", hint="try another") for op in args.fail
    }
    fail |= {op: ZeroDivisionError(f"{op} crashed in the test") for op in args.crash}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        session = FakeSession(
            Path(tmp),
            delay=args.delay,
            fail=fail,
            refuse=frozenset(args.refuse),
            environments=args.environments,
            snapshots=args.snapshots,
        )
        if args.seal:
            session.seal()
        from bootagent.reset.password import make_hash

        password = make_hash(args.password, b"testbed-salt-16b") if args.password else ""
        settings = MenuSettings(
            timeout=args.timeout,
            ascii=not args.unicode,
            color=args.color,
            rows=args.rows,
            cols=args.cols,
            allow_shell=not args.no_shell,
            serial=args.serial,
            term=os.environ.get("TERM", ""),
            esc_delay=args.esc_delay,
            password_pbkdf2=password,
            start_reset=args.start_reset,
        )
        runs: list[str] = []
        errors: list[str] = []
        while True:
            if args.lines or settings.line_mode:
                result = run_lines(session, settings, sys.stdin, sys.stdout)
            else:
                import blessed

                from bootagent.tui import app

                info["blessed"] = blessed.__version__
                made = time.monotonic()
                term = app.make_terminal(settings)
                info.setdefault("terminal_seconds", time.monotonic() - made)
                try:
                    result = run_menu(session, settings, term=term)
                except Exception:
                    errors.append(traceback.format_exc())
                    break
            runs.append(exit_name(result))
            if not args.loop or Path(args.out + ".stop").exists():
                break
        info["runs"] = runs
        info["errors"] = errors
    info["seconds"] = time.monotonic() - started
    times = os.times()
    info["cpu_seconds"] = times.user + times.system  # this process's, from its start
    Path(args.out).write_text(
        json.dumps(
            {
                "exit": result.exit.value,
                "decision": asdict(result.decision) if result.decision else None,
                "reset": json.loads(result.reset.to_json()) if result.reset else None,
                "calls": session.calls,
                "info": info,
            }
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
