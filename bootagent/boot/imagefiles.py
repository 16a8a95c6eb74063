"""What the agent image needs to run the agent, and staging it: used by initramfs-hooks/bootagent-mkinitrd.

The module list is taken from what the agent really imports: a child interpreter (started like the boot
script starts it: -S, no site) imports the agent's entry points and the lazy imports they make later, and
reports every loaded module's file. Pure-Python files are staged compiled (sourceless .pyc); compiled
extension modules, the interpreter and the helper binaries are printed for initramfs-tools' copy_exec, which
also copies the shared libraries they need.

    python3 -m bootagent.boot.imagefiles stage DESTDIR   # stage .pyc, terminfo, config; print ELF files
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

DIST_PACKAGES = "/usr/lib/python3/dist-packages"

# Everything the agent may import, including imports made lazily inside functions (they are easy to miss:
# ctypes.util pulls in shutil, pyudev's libudev loader uses ctypes, blessed 1.19 uses curses).
AGENT_MODULES = (
    "bootagent.boot.main",
    "bootagent.boot.agent",
    "bootagent.zfs.backend",
    "bootagent.zfs.lzc",
    "bootagent.tui.launch",
    "libzfs_core",
    "libzfs_core.exceptions",
    "pyudev",
    "blessed",
    "yaml",
    "curses",
    "ctypes",
    "ctypes.util",
    "shutil",
    "select",
    "selectors",
    "termios",
    "tty",
    "fcntl",
    "threading",
    "json",
    "uuid",
    "difflib",
    "random",
    "shlex",
    "encodings",
    "bootagent.boot.imagefiles",
)

TERMINFO = ("l/linux", "v/vt100", "v/vt102", "v/vt220", "x/xterm", "d/dumb")
TERMINFO_DIRS = ("/lib/terminfo", "/usr/share/terminfo", "/etc/terminfo")
BINARIES = ("/usr/bin/python3", "/sbin/kexec", "/usr/sbin/kexec")
LIBRARIES = ("libzfs_core.so.3", "libnvpair.so.3", "libudev.so.1")
LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")

_PROBE = """
import importlib, json, sys
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report, do not stop: the agent lives without optional pieces
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
try:  # run the code paths that import lazily (config parsing, terminal set-up, formatting)
    import bootagent.boot.imagefiles as images
    images.exercise()
except Exception as exc:
    failed.append(f"exercise: {type(exc).__name__}: {exc}")
files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
json.dump({"files": files, "failed": failed}, sys.stdout)
"""


def exercise() -> None:
    """Touch what the agent does at run time without ZFS, so lazy imports show up in sys.modules:
    the config, the command line, the ZFS adapters' construction, the journal, and the menu's state machine
    and renderer over a small inventory."""
    import datetime
    import io
    import json
    import tempfile
    import uuid

    import blessed

    from bootagent.boot.cmdline import parse_cmdline
    from bootagent.bootstate import BootChoice
    from bootagent.config import load_config
    from bootagent.environments import Inventory
    from bootagent.journal import Journal, Outcome
    from bootagent.model import Actor, BootEnvironment, BootState, CreatedBy, PoolHealth, PoolInfo, Snapshot
    from bootagent.tui import render as tui_render
    from bootagent.tui.app import initial_state
    from bootagent.tui.settings import MenuSettings
    from bootagent.zfs.backend import ZfsSystem
    from bootagent.zfs.channel import load_program
    from bootagent.zfs.lzc import Lzc

    logging.disable(logging.CRITICAL)  # the error paths run too; their messages are not for this output
    params = parse_cmdline("root=ZFS=rpool/ROOT/a bootagent=menu bootagent.timeout=5 console=ttyS0,115200n8")
    ZfsSystem()
    Lzc().available()
    for program in ("destroy.lua", "rollback_newer.lua", "set_user.lua"):
        load_program(program)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("pool: rpool\nretention:\n  keep_count: 3\nbogus: [1, 2]\n")
        config = load_config(path, strict=False).config
        journal = Journal(tmp, actor=Actor.AGENT)
        with journal.operation("exercise", "a"):
            pass
        journal.record("exercise", "a", Outcome.INTENT)
        journal.pending()
    json.loads(json.dumps({"t": datetime.datetime.now().astimezone().isoformat(), "u": uuid.uuid4().hex}))
    "é".encode("utf-8-sig").decode("utf-8-sig")

    snap = Snapshot("a", "rpool/ROOT/a", "s1", 1, 10, 1 << 20, 1 << 30, "first ü", CreatedBy.MANUAL, False)
    env = BootEnvironment(
        "a",
        "rpool/ROOT/a",
        1,
        1 << 30,
        1 << 30,
        None,
        "/",
        False,
        "6.1.0-1-amd64",
        "system",
        CreatedBy.MANUAL,
        False,
        2,
        None,
        (snap,),
    )
    inventory = Inventory(
        PoolInfo("rpool", PoolHealth.ONLINE, 1 << 34, 1 << 33, True, "rpool/ROOT/a"),
        "rpool/ROOT",
        (env,),
        BootState("a", None, None, "a"),
        BootChoice(None, None, False, False),
    )

    class Session:
        def inventory(self) -> Inventory:
            return inventory

        def default_environment(self) -> str | None:
            return "a"

        def journal(self, limit: int) -> list[object]:
            return []

    for ascii_only in (True, False):
        settings = MenuSettings.from_console(config.console, serial=ascii_only, term="vt220", timeout=5)
        state = initial_state(Session(), settings, 0.0)  # type: ignore[arg-type]
        for key in ("+", "j", "?", "q", "r", "q", "l"):
            state.handle(key)
        glyphs = tui_render.ASCII if ascii_only else tui_render.UNICODE
        tui_render.render(state, tui_render.Size(24, 80), glyphs, ascii_only=ascii_only)
    term = blessed.Terminal(kind="vt220", stream=io.StringIO(), force_styling=True)
    term.move_xy(1, 1) + term.clear + term.reverse("x") + term.normal
    del params
    logging.disable(logging.NOTSET)


def loaded_module_files(
    python: str, modules: Sequence[str], extra_path: Sequence[str]
) -> tuple[list[str], list[str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(extra_path), LC_ALL="C")
    out = subprocess.run(
        [python, "-S", "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=300,
    )
    data = json.loads(out.stdout)
    return list(data["files"]), list(data["failed"])


def package_data(files: Iterable[str]) -> list[str]:
    """Non-Python files the loaded packages read at run time (channel programs, the default config)."""
    out: list[str] = []
    for f in files:
        path = Path(f)
        if path.name == "__init__.py" and path.parent.name == "bootagent":
            out += [str(p) for p in (path.parent / "zfs" / "lua").glob("*.lua")]
            out += [str(p) for p in (path.parent / "data").glob("*") if p.is_file()]
    return out


def stage(destdir: str, *, python: str = "/usr/bin/python3") -> list[str]:
    """Copy the compiled modules into destdir; return the ELF files for copy_exec."""
    paths = [p for p in (os.environ.get("BOOTAGENT_PYTHONPATH", ""), DIST_PACKAGES) if p]
    files, failed = loaded_module_files(python, AGENT_MODULES, paths)
    for problem in failed:
        print(f"bootagent hook: warning: {problem}", file=sys.stderr)
    elf: list[str] = []
    dest = Path(destdir)
    encodings_dir = next((Path(f).parent for f in files if f.endswith("/encodings/__init__.py")), None)
    if encodings_dir is not None:  # codecs are looked up by name at run time: ship them all
        files = sorted({*files, *(str(p) for p in encodings_dir.glob("*.py"))})
    for f in [*files, *package_data(files)]:
        src = Path(f)
        if src.suffix == ".so" or ".so." in src.name:
            elf.append(str(src))
            continue
        target = dest / src.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            # sourceless .pyc next to where the .py would be: Python imports it without the source
            py_compile.compile(
                str(src), cfile=str(target.with_suffix(".pyc")), dfile=str(src), doraise=True, optimize=1
            )
        else:
            shutil.copy2(src, target)
    # the interpreter's landmarks: os.pyc (found by the module scan) and a lib-dynload beside it
    stdlib = next((Path(f).parent for f in files if f.endswith("/os.py")), None)
    if stdlib is not None:
        (dest / stdlib.relative_to("/") / "lib-dynload").mkdir(parents=True, exist_ok=True)
    for name in TERMINFO:
        for base in TERMINFO_DIRS:
            src = Path(base) / name
            if src.is_file():
                target = dest / "lib" / "terminfo" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                break
    elf += [os.path.realpath(b) for b in BINARIES if os.path.exists(b)]
    for lib in LIBRARIES:
        found = next((os.path.join(d, lib) for d in LIB_DIRS if os.path.exists(os.path.join(d, lib))), None)
        if found:
            elf.append(found)
    return sorted(set(elf))


def _findmnt(findmnt: str, columns: str, target: str) -> list[str] | None:
    """The columns of the mount holding `target` (None when findmnt cannot say)."""
    try:
        return subprocess.run(
            [findmnt, "-n", "-o", columns, "--target", target],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None


def grubenv_conf(grubenv: str, *, findmnt: str = "findmnt") -> str:
    """KEY=value lines telling the agent where the writable grubenv is: its file system's UUID and the
    file's path inside that file system. Empty when it is not on a separate plain file system."""
    out = _findmnt(findmnt, "UUID,FSTYPE,TARGET", os.path.dirname(grubenv))
    if out is None or len(out) != 3 or out[1] == "zfs":
        return ""
    uuid, _fstype, target = out
    rel = os.path.relpath(grubenv, target)
    return f"GRUBENV_UUID={uuid}\nGRUBENV_FILE={rel}\n"


def boot_pool_conf(boot_root: str, *, findmnt: str = "findmnt") -> str:
    """BOOT_POOL=NAME when the running system's /boot is a boot half (<pool>/<boot_root>/<name> on a pool
    other than the root's, bootagent.pairs): the agent imports that pool too. Empty otherwise."""
    root = _findmnt(findmnt, "SOURCE,FSTYPE", "/")
    boot = _findmnt(findmnt, "SOURCE,FSTYPE", "/boot")
    if (
        root is None
        or boot is None
        or len(root) != 2
        or len(boot) != 2
        or root[1] != "zfs"
        or boot[1] != "zfs"
    ):
        return ""
    pool, _, rest = boot[0].partition("/")
    if pool == root[0].split("/", 1)[0] or rest.rpartition("/")[0] != boot_root:
        return ""
    return f"BOOT_POOL={pool}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bootagent.boot.imagefiles")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("stage", help="stage the agent into DESTDIR; print ELF files for copy_exec")
    p.add_argument("destdir")
    p = sub.add_parser("grubenv-conf", help="print where the writable grubenv is")
    p.add_argument("grubenv", nargs="?", help="default: 'grubenv' of the config")
    args = parser.parse_args(argv)
    if args.verb == "stage":
        for path in stage(args.destdir):
            print(path)
    else:
        from bootagent.config import load_config

        config = load_config(None, strict=False).config
        sys.stdout.write(grubenv_conf(args.grubenv or config.grubenv))
        if config.boot_pool not in ("auto", "none"):
            sys.stdout.write(f"BOOT_POOL={config.boot_pool}\n")
        elif config.boot_pool == "auto":
            sys.stdout.write(boot_pool_conf(config.layout.boot_root))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
