"""One checkpoint per apt run, before dpkg changes anything (apt/80bootagent calls these three stages).

- `pre-invoke` (DPkg::Pre-Invoke, before each dpkg run of an apt run): the checkpoint of the running
  environment, created-by package-manager, described by apt's command line; once per apt run.
- `packages` (DPkg::Pre-Install-Pkgs, version 3 on standard input): the checkpoint's description names the
  packages and versions being changed (protocol.py). It takes the checkpoint itself if it runs first.
- `post-invoke` (DPkg::Post-Invoke): records the outcome (`dpkg --audit` says whether packages were left
  half-installed) and, when the run installed a kernel, makes the newest new kernel the environment's
  kernel and brings GRUB's menu up to date (the kernel's own update-grub ran before that).

An apt run is the nearest ancestor that is no shell (apt runs hooks with `sh -c`), by its process id and
start time; what the run has done is kept in /run/bootagent (gone at the next boot). Nothing happens when
the root is not a boot environment, in a chroot, or when `apt.checkpoint` is off. A hook that fails warns
and lets apt go on, unless `apt.stop_on_failure` says to stop it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from bootagent.apt.protocol import HookInput, describe
from bootagent.environments import MAX_DESCRIPTION, BootEnvironments, unique_name
from bootagent.fsutil import atomic_write
from bootagent.model import CreatedBy, Prop

LOG = logging.getLogger(__name__)

STATE = Path("/run/bootagent/apt-run.json")
SHELLS = frozenset({"sh", "dash", "bash", "busybox"})
SAME_RUN = 120.0  # seconds after a finished dpkg run within which the same process's next one is the same run


@dataclass(frozen=True)
class AptRun:
    ident: str  # "PID:STARTTIME" of the apt process
    command: str  # its command line, for the description


def _stat(proc: Path, pid: int) -> tuple[str, int, str] | None:
    """(comm, ppid, starttime) of a process, from /proc/PID/stat."""
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    comm = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    return comm, int(fields[1]), fields[19]


def current_run(proc: Path = Path("/proc"), start: int | None = None) -> AptRun:
    """The apt run this hook belongs to: the nearest ancestor that is no shell, or rather the outermost
    of the processes of that name above it -- apt runs Pre-Invoke and Post-Invoke from a forked copy of
    itself (another pid each time) and Pre-Install-Pkgs from its main process (recorded with apt 2.6)."""
    pid = os.getppid() if start is None else start
    for _ in range(8):
        found = _stat(proc, pid)
        if found is None:
            break
        comm, ppid, started = found
        if comm not in SHELLS or ppid <= 1:
            while ppid > 1 and (parent := _stat(proc, ppid)) is not None and parent[0] == comm:
                pid, (comm, ppid, started) = ppid, parent  # a forked copy: its parent is the run
            try:
                raw = (proc / str(pid) / "cmdline").read_bytes()
            except OSError:
                raw = b""
            command = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
            return AptRun(f"{pid}:{started}", command or comm)
        pid = ppid
    return AptRun(f"{pid}:?", "apt")


@dataclass(frozen=True)
class RunState:
    """What this apt run has done so far."""

    run: str
    checkpoint: str  # ENV@SNAPSHOT
    dataset: str  # the snapshot's full name
    kernels: tuple[str, ...]  # the kernels installed when it began
    described: bool = False  # the packages are in the description
    finished: bool = False

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(data["run"]),
                str(data["checkpoint"]),
                str(data["dataset"]),
                tuple(str(k) for k in data["kernels"]),
                bool(data.get("described", False)),
                bool(data.get("finished", False)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        data = {
            "run": self.run,
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "kernels": list(self.kernels),
            "described": self.described,
            "finished": self.finished,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(data).encode())


@dataclass(frozen=True)
class Outcome:
    checkpoint: str | None
    text: str
    kernel: str | None = None  # the environment's new kernel, when the run installed one


class AptHook:
    def __init__(
        self,
        envs: BootEnvironments,
        run: AptRun,
        *,
        kernels: Callable[[], Iterable[str]],
        state: Path | None = None,
    ) -> None:
        self.envs = envs
        self.run = run
        self.kernels = kernels
        self.state_path = state or STATE

    def _state(self) -> RunState | None:
        """This apt run's state. A long-lived process that runs dpkg more than once (packagekitd, a
        python-apt program) is one run only while its dpkg runs follow each other: SAME_RUN seconds after
        one finished, the next is a run of its own."""
        state = RunState.load(self.state_path)
        if state is None or state.run != self.run.ident:
            return None
        if state.finished:
            try:
                age = time.time() - self.state_path.stat().st_mtime
            except OSError:
                return None
            if age > SAME_RUN:
                return None
        return state

    def is_environment(self) -> bool:
        return self.envs.inventory().state.running is not None

    def _checkpoint(self, description: str, described: bool) -> Outcome:
        kernels = tuple(sorted(self.kernels()))  # before anything changes
        taken = [s.name for s in self.envs.inventory().current().snapshots]
        name = unique_name(self.envs.auto_name(CreatedBy.PACKAGE_MANAGER), taken)  # one second: apt-...-2
        snap = self.envs.checkpoint(name=name, description=description, created_by=CreatedBy.PACKAGE_MANAGER)
        RunState(self.run.ident, snap.label, snap.full_name, kernels, described=described).save(
            self.state_path
        )
        return Outcome(snap.label, f"checkpoint {snap.label} before this apt run")

    def pre_invoke(self) -> Outcome:
        state = self._state()
        if state is not None:
            return Outcome(state.checkpoint, f"checkpoint {state.checkpoint} already taken for this apt run")
        command = self.run.command.strip() or "apt"
        return self._checkpoint(_clip(f"apt: {command}"), described=False)

    def packages(self, hook_input: HookInput) -> Outcome:
        for problem in hook_input.problems:
            LOG.warning("apt hook input: %s", problem)
        description = describe(hook_input.changes, MAX_DESCRIPTION)
        state = self._state()
        if state is None:
            return self._checkpoint(description, described=True)
        if not hook_input.changes or state.described:
            return Outcome(state.checkpoint, f"checkpoint {state.checkpoint}: {description}")
        with self.envs.journal.operation("describe", state.checkpoint, detail=description):
            self.envs.zfs.set_user(state.dataset, {Prop.DESCRIPTION.value: description})
        replace(state, described=True).save(self.state_path)
        return Outcome(state.checkpoint, f"checkpoint {state.checkpoint}: {description}")

    def post_invoke(self, problems: str) -> Outcome:
        """`problems`: what `dpkg --audit` said ("" when every package is installed and configured)."""
        state = self._state()
        if state is None:
            return Outcome(None, "no checkpoint was taken for this apt run")
        ok = not problems.strip()
        detail = "dpkg left every package configured" if ok else "dpkg left packages half-installed"
        kernel = self._new_kernel(state)
        with self.envs.journal.operation(
            "package-manager",
            state.checkpoint,
            detail=detail if ok else f"{detail}: {problems.strip()[:300]}",
        ):
            if kernel is not None:
                inv = self.envs.inventory()
                env = inv.current()
                self.envs.zfs.set_user(env.dataset, {Prop.KERNEL.value: kernel})
        replace(state, finished=True).save(self.state_path)
        text = f"apt run after checkpoint {state.checkpoint}: {detail}"
        if kernel is not None:
            text += f"; the environment's kernel is now {kernel}"
        if not ok:
            text += f" (roll back with: bootagent rollback --to {state.checkpoint})"
        return Outcome(state.checkpoint, text, kernel)

    def _new_kernel(self, state: RunState) -> str | None:
        from bootagent.boot.kernels import release_key

        new = set(self.kernels()) - set(state.kernels)
        return max(new, key=release_key) if new else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def in_chroot(proc: str = "/proc") -> bool:
    """This process's / is not the machine's (an image being built in a chroot): its apt runs are not the
    running system's. Unknown (no /proc, no permission) counts as not in a chroot."""
    try:
        mine, init = os.stat("/"), os.stat(f"{proc}/1/root")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) != (init.st_dev, init.st_ino)


def installed_kernels(root: str = "/") -> list[str]:
    """The kernel releases the running root can boot (/boot/vmlinuz-R with /lib/modules/R)."""
    from bootagent.boot.kernels import kernels_in

    return [k.release for k in kernels_in(root)]
