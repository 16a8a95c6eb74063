"""Content-keyed build cache: one directory per stage and key, published by an atomic rename."""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import textwrap
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


@contextmanager
def building(art: Artifact) -> Iterator[Path]:
    """Yield a fresh temporary directory; publish it as the artifact only if the body succeeds."""
    tmp = art.path.with_name(f".tmp-{art.path.name}")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    say(f"building {art.name} ({art.key}) ...")
    log = stage_log(art.name)
    log.write_text("")
    try:
        yield tmp
    except BaseException:
        say(f"FAILED {art.name}; log: {log}")
        raise
    remove_tree(art.path)  # a stale, partly deleted one
    tmp.rename(art.path)
    say(f"done {art.name} -> {art.path}")


def clean_stale_temps() -> None:
    for tmp in cache_dir().glob(".tmp-*"):
        remove_tree(tmp)


def du(path: Path) -> int:
    """Bytes really allocated under path."""
    out = run(["du", "-s", "-B1", str(path)], check=False)
    return int(out.split()[0]) if out.strip() else 0


def copy_tree(src: Path, dst: Path) -> None:
    run(["cp", "-a", str(src), str(dst)], timeout=900)
