"""Content-keyed build cache: one directory per stage and key, published by an atomic rename."""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import re
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.run import run, say


def cache_dir() -> Path:
    path = Path(os.environ.get("BOOTAGENT_VM_CACHE", "/var/cache/bootagent-vm"))
    path.mkdir(parents=True, exist_ok=True)
    (path / "logs").mkdir(exist_ok=True)
    return path


def key_of(*parts: Any) -> str:
    """A short stable hash of the given parts (their repr)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def source_of(*objects: Callable[..., Any]) -> str:
    """The code of functions, as a syntax tree dump (a stage's own script is part of its key;
    comments and formatting are not)."""
    return "\n".join(ast.dump(ast.parse(textwrap.dedent(inspect.getsource(obj)))) for obj in objects)


@dataclass(frozen=True)
class Artifact:
    name: str
    key: str
    path: Path

    @property
    def done(self) -> bool:
        return self.path.is_dir()


def artifact(name: str, key: str) -> Artifact:
    return Artifact(name, key, cache_dir() / f"{name}-{key}")


def stage_log(name: str) -> Path:
    return cache_dir() / "logs" / f"{name}.log"


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if (p + "/").startswith(prefix)]


def remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount point left behind by an interrupted chroot."""
    if not path.exists():
        return
    mounts = _mounted_under(path)
    for point in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", point], check=False)
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=900)


HEARTBEAT = 60.0  # seconds between "still building" lines


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [line for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x1f\x7f]", "", lines[-1])  # a console's colours
    return plain.strip()[:100]


@contextmanager
def heartbeat(what: str, *logs: Path, every: float = HEARTBEAT) -> Iterator[None]:
    """While the body runs, say every minute that `what` is still going, with the newest line of whichever
    of its logs changed last: a first build takes 15-25 minutes and nobody should stare at a silent
    terminal."""
    done = threading.Event()
    started = time.monotonic()

    def newest() -> Path:
        found = [(p.stat().st_mtime, p) for p in logs if p.exists() and p.stat().st_size]
        return max(found)[1] if found else logs[0]

    def beat() -> None:
        while not done.wait(every):
            minutes = (time.monotonic() - started) / 60
            log = newest()
            last = _last_line(log)
            say(f"  ... still {what}: {minutes:.0f} min" + (f" | {last}" if last else "") + f" (log: {log})")

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1)


@contextmanager
def building(art: Artifact, *watch: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; publish it as the artifact only if the body succeeds. While it
    runs, a line a minute says so, quoting the newest of its log, a guest's console and `watch`."""
    tmp = art.path.with_name(f".tmp-{art.path.name}")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    say(f"building {art.name} ({art.key}) ...")
    log = stage_log(art.name)
    log.write_text("")
    started = time.monotonic()
    try:
        with heartbeat(f"building {art.name}", log, tmp / "vm" / "console.log", *watch):
            yield tmp
    except BaseException:
        say(f"FAILED {art.name} after {time.monotonic() - started:.0f} s; log: {log}")
        raise
    remove_tree(art.path)  # a stale, partly deleted one
    tmp.rename(art.path)
    say(f"done {art.name} in {time.monotonic() - started:.0f} s -> {art.path}")


def clean_stale_temps() -> None:
    for tmp in cache_dir().glob(".tmp-*"):
        remove_tree(tmp)


def du(path: Path) -> int:
    """Bytes really allocated under path."""
    out = run(["du", "-s", "-B1", str(path)], check=False)
    return int(out.split()[0]) if out.strip() else 0


def copy_tree(src: Path, dst: Path) -> None:
    run(["cp", "-a", str(src), str(dst)], timeout=900)
