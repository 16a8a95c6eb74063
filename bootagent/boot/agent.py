"""The early-boot session: the pool imported read-only while the operator only looks, read-write only once
they commit to a change, and exported again before the hand-over to Debian's zfs initramfs script.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bootagent.boot.cmdline import BootParams, cmdline_for
from bootagent.boot.kernels import KernelFiles, choose_kernel
from bootagent.boot.session import BootDecision, Progress
from bootagent.bootstate import BootStore
from bootagent.config import BOOT_POOL_AUTO, BOOT_POOL_NONE, Config
from bootagent.environments import BootEnvironments, Inventory, RollbackResult, RollForwardResult, unique_name
from bootagent.errors import BootagentError, CommandError, RefusedError
from bootagent.grubenv import Grubenv, GrubenvFile
from bootagent.journal import Journal, JournalEntry
from bootagent.model import Actor, CreatedBy, split_target
from bootagent.names import name_problem, shown
from bootagent.pairs import boot_refusal
from bootagent.reset.mode import ResetMode
from bootagent.reset.plan import ResetPlan
from bootagent.reset.run import ResetTarget, set_flag
from bootagent.reset.service import prepare, resume
from bootagent.reset.service import start as start_reset
from bootagent.reset.store import ResetStore
from bootagent.runner import Runner, run
from bootagent.zfs.backend import ZfsSystem
from bootagent.zfs.cli import ZfsCli
from bootagent.zfs.interface import ZfsBackend

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EarlyBootPaths:
    run_dir: str = "/run/bootagent"
    param_conf: str = "/conf/param.conf"  # initramfs-tools' /init re-reads it after every script
    initramfs_conf: str = "/etc/bootagent/initramfs.conf"  # written by the hook at mkinitramfs time

    @property
    def state_mount(self) -> str:
        return os.path.join(self.run_dir, "state")

    @property
    def grub_mount(self) -> str:
        return os.path.join(self.run_dir, "grub")

    @property
    def peek_mount(self) -> str:
        return os.path.join(self.run_dir, "peek")


def read_shell_conf(path: str) -> dict[str, str]:
    """KEY=value lines (the hook writes them); anything else is ignored."""
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier():
            out[key] = value.strip().strip("'\"")
    return out


class UnreachableGrubenv(GrubenvFile):
    """The initramfs knows no writable grubenv (none was recorded when the image was built, or the pool is
    still read-only): reads are empty, and a change is only the pool's bootfs, which is said once."""

    def read(self) -> Grubenv:
        return Grubenv({})

    def update(self, changes: Mapping[str, str | None]) -> Grubenv:
        LOG.warning(
            "GRUB's environment block is not reachable from here: only the pool's bootfs records the choice "
            "(GRUB's own default stays until bootagent runs in the booted system)"
        )
        return Grubenv({})


class EarlyBootSession:
    """A RecoverySession over the real pool. Call `close()` (or `hand_over`) on every path."""

    def __init__(
        self,
        params: BootParams,
        config: Config,
        pool: str,
        *,
        runner: Runner = run,
        paths: EarlyBootPaths | None = None,
        running_release: str | None = None,
        zfs: ZfsBackend | None = None,
    ) -> None:
        self.params = params
        self.config = config
        self.pool = pool
        self.runner = runner
        self.paths = paths or EarlyBootPaths()
        self.cli = ZfsCli(runner)  # import, export: the command line
        self.zfs: ZfsBackend = zfs if zfs is not None else ZfsSystem(runner)
        self.running_release = running_release or os.uname().release
        self.writable = False
        self.imported = False
        self._mounted: list[str] = []
        self._inventory: Inventory | None = None
        self._envs: BootEnvironments | None = None
        self.conf = read_shell_conf(self.paths.initramfs_conf)
        # the HOWTO's boot pool: the config's, else the one the running system had when the image was made
        self.boot_pool: str | None = config.boot_pool
        if config.boot_pool == BOOT_POOL_AUTO:
            self.boot_pool = self.conf.get("BOOT_POOL") or None
        if self.boot_pool in (BOOT_POOL_NONE, pool):
            self.boot_pool = None
        self.boot_imported = False
        if self.boot_pool:  # the layout is known: no guessing among the pools in the initramfs
            self.config = replace(config, boot_pool=self.boot_pool)

    # --- pool and mounts -----------------------------------------------------------------------------
    def open_readonly(self) -> None:
        """Import without mounting anything, read-only: looking never writes."""
        if self._already_imported():
            LOG.info("pool %s is already imported", self.pool)
            self.imported = True
            self.writable = not self.zfs.pool_info(self.pool).readonly
        else:
            self.cli.import_pool(self.pool, readonly=True, altroot=None)
            self.imported = True
            self.writable = False
        self._import_boot_pool(readonly=not self.writable)
        self._mount_state()

    def _already_imported(self, pool: str | None = None) -> bool:
        argv = ["zpool", "list", "-H", "-o", "name", pool or self.pool]
        return self.runner(argv, check=False).returncode == 0

    def _import_boot_pool(self, *, readonly: bool) -> None:
        """The boot pool beside the root pool; when it cannot be imported every pair shows its missing half
        (bootagent.pairs) and nothing is booted half-way."""
        if not self.boot_pool or self.boot_imported:
            return
        if self._already_imported(self.boot_pool):
            self.boot_imported = True
            return
        try:
            self.cli.import_pool(self.boot_pool, readonly=readonly, altroot=None)
            self.boot_imported = True
        except BootagentError as exc:
            LOG.error(
                "cannot import the boot pool %s (%s): no environment can be booted", self.boot_pool, exc
            )

    def _make_writable(self, progress: Progress) -> None:
        if self.writable:
            return
        progress(f"re-importing pool {self.pool} read-write")
        self._unmount_all()
        self._export_boot_pool()
        self.cli.export_pool(self.pool)
        self.imported = False
        self.cli.import_pool(self.pool, readonly=False, altroot=None)
        self.imported = True
        self.writable = True
        self._envs = None
        self._import_boot_pool(readonly=False)
        self._mount_state()

    def _export_boot_pool(self) -> None:
        if self.boot_pool and self.boot_imported:
            try:
                self.cli.export_pool(self.boot_pool)
            except BootagentError as exc:
                LOG.error("could not export the boot pool %s: %s", self.boot_pool, exc)
            self.boot_imported = False

    def _mount(self, dataset: str, path: str, *, readonly: bool) -> None:
        os.makedirs(path, exist_ok=True)
        opts = "ro,zfsutil" if readonly else "zfsutil"
        self.runner(["mount", "-t", "zfs", "-o", opts, dataset, path])
        self._mounted.append(path)

    def _mount_state(self) -> None:
        state = self.config.state_dataset(self.pool)
        try:
            self._mount(state, self.paths.state_mount, readonly=not self.writable)
        except BootagentError as exc:
            LOG.warning("cannot mount the state dataset %s (%s); the journal stays in memory", state, exc)

    def _mount_grub(self) -> GrubenvFile:
        """The writable grubenv lives on a plain partition; the hook recorded which (GRUBENV_UUID)."""
        uuid = self.conf.get("GRUBENV_UUID")
        rel = self.conf.get("GRUBENV_FILE", "grubenv").lstrip("/")
        target = os.path.join(self.paths.grub_mount, rel)
        if not uuid:
            LOG.warning("no GRUB environment partition recorded; boot choices go to bootfs only")
            return UnreachableGrubenv(os.path.join(self.paths.run_dir, "no-grubenv", "grubenv"))
        if self.paths.grub_mount not in self._mounted:
            os.makedirs(self.paths.grub_mount, exist_ok=True)
            self.runner(["mount", "-t", "ext4,vfat", f"UUID={uuid}", self.paths.grub_mount], check=True)
            self._mounted.append(self.paths.grub_mount)
        return GrubenvFile(target)

    def _unmount_all(self) -> None:
        for path in reversed(self._mounted):
            result = self.runner(["umount", path], check=False)
            if result.returncode != 0:
                LOG.warning("could not unmount %s: %s", path, result.stderr.strip())
        self._mounted.clear()

    def close(self) -> None:
        """Leave the pool as Debian's zfs script expects it: exported (it imports it itself)."""
        self._unmount_all()
        self._export_boot_pool()
        if self.imported:
            try:
                self.cli.export_pool(self.pool)
            except BootagentError as exc:
                LOG.error("could not export pool %s: %s", self.pool, exc)
            self.imported = False

    # --- the domain, on the right import ------------------------------------------------------------
    def state_directory(self) -> str:
        """The state dataset's mount (the journal, the recovery state), else a directory in memory."""
        return self.paths.state_mount if self.paths.state_mount in self._mounted else self.paths.run_dir

    def _journal(self, actor: Actor = Actor.AGENT) -> Journal:
        return Journal(self.state_directory(), actor=actor, max_entries=self.config.journal.max_entries)

    def automatic(self, progress: Progress) -> tuple[BootEnvironments, Journal]:
        """For the unattended recovery: the pool read-write, and a journal that records actor `automatic`."""
        envs = self.envs(progress, write=True)
        return envs, self._journal(Actor.AUTOMATIC)

    def envs(self, progress: Progress | None = None, *, write: bool = False) -> BootEnvironments:
        if write:
            self._make_writable(progress or (lambda _m: None))
        if self._envs is None:  # rebuilt after the switch to read-write (_make_writable clears it)
            grubenv = (
                self._mount_grub()
                if self.writable
                else UnreachableGrubenv(os.path.join(self.paths.run_dir, "no-grubenv", "grubenv"))
            )
            self._envs = BootEnvironments(
                self.zfs,
                self.config,
                self.pool,
                self._journal(),
                BootStore(self.zfs, grubenv),
            )
        return self._envs

    # --- RecoverySession -----------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = self.envs().inventory()
        return self._inventory

    def default_environment(self) -> str | None:
        """The environment GRUB chose (root= on the command line), else the active one, else the
        last-known-good one -- only ever one whose name bootagent can hand over."""
        inv = self.inventory()
        names = {e.name for e in inv.environments if name_problem(e.name) is None}
        if self.params.root:
            chosen = self.params.root.rsplit("/", 1)[-1]
            if chosen in names:
                return chosen
        for candidate in (inv.state.active, inv.state.last_known_good):
            if candidate in names:
                return candidate
        return None

    def journal(self, limit: int) -> Sequence[JournalEntry]:
        return self._journal().entries(limit)

    @contextlib.contextmanager
    def _peek(self, dataset: str, boot: str | None = None) -> Iterator[str]:
        """The environment read-only, with its /boot half (if it is a pair) inside it."""
        path = os.path.join(self.paths.peek_mount, dataset.replace("/", "_"))
        self._mount(dataset, path, readonly=True)
        inner = os.path.join(path, "boot")
        try:
            if boot is not None:
                self._mount(boot, inner, readonly=True)
            yield path
        finally:
            for where in (inner, path) if boot is not None else (path,):
                self.runner(["umount", where], check=False)
                if where in self._mounted:
                    self._mounted.remove(where)

    def kernel_of(self, dataset: str, preferred: str | None, boot: str | None = None) -> KernelFiles | None:
        with self._peek(dataset, boot) as tree:
            return choose_kernel(tree, running=self.running_release, preferred=preferred)

    def boot(self, environment: str) -> BootDecision:
        env = self.inventory().find(environment)
        if (why := boot_refusal(env)) is not None:
            raise RefusedError(why, hint="choose another environment")
        kernel = self.kernel_of(env.dataset, env.kernel, env.boot_dataset)
        if kernel is None:
            raise RefusedError(
                f"{environment} has no bootable kernel (no /boot/vmlinuz-R with /lib/modules/R)",
                hint="choose another environment",
            )
        return BootDecision(
            environment=env.name,
            dataset=env.dataset,
            kernel=kernel.release,
            needs_own_kernel=kernel.release != self.running_release,
        )

    def boot_snapshot(self, snapshot: str, progress: Progress) -> BootDecision:
        env_name, snap_name = split_target(snapshot)
        self.inventory().find_snapshot(env_name, snap_name or "")
        envs = self.envs(progress, write=True)
        name = unique_name(f"{env_name}-{snap_name}", [e.name for e in envs.inventory().environments])
        progress(f"cloning {snapshot} into a new environment {name}")
        envs.create(
            name,
            snapshot,
            description=f"booted from {snapshot} at the boot menu",
            created_by=CreatedBy.AGENT,
        )
        self._inventory = None
        return self.boot(name)

    def rollback(
        self, environment: str, *, steps: int | None, destructive: bool, progress: Progress
    ) -> RollbackResult:
        envs = self.envs(progress, write=True)
        progress(f"rolling {environment} back {steps or 1} step(s)")
        result = envs.rollback(environment, steps=steps, destructive=destructive, created_by=CreatedBy.AGENT)
        self._inventory = None
        return result

    def roll_forward(self, environment: str, *, steps: int | None, progress: Progress) -> RollForwardResult:
        envs = self.envs(progress, write=True)
        progress(f"rolling {environment} forward")
        result = envs.roll_forward(environment, steps=steps)
        self._inventory = None
        return result

    # --- the factory reset ----------------------------------------------------------------------------
    def reset_target(self, progress: Progress, actor: Actor = Actor.AGENT) -> ResetTarget:
        envs = self.envs(progress, write=True)
        return ResetTarget(
            zfs=envs.zfs,
            boot=envs.boot,
            journal=self._journal(actor),
            state_directory=self.state_directory(),
            progress=progress,
        )

    def plan_reset(
        self,
        mode: ResetMode,
        *,
        actor: Actor = Actor.AGENT,
        reason: str = "",
        secure: bool = False,
        release: str | None = None,
    ) -> ResetPlan:
        return prepare(
            self.zfs,
            self.config,
            self.pool,
            mode,
            release=release,
            actor=actor.value,
            secure=secure,
            reason=reason,
        )

    def factory_reset(self, plan: ResetPlan, progress: Progress, actor: Actor = Actor.AGENT) -> BootDecision:
        """Carry the reset out on the pool imported read-write, then decide to boot its environment."""
        if self.state_directory() != self.paths.state_mount:
            raise RefusedError(
                f"the state dataset {self.config.state_dataset(self.pool)} is not mounted: a reset could not "
                "be carried on after a power cut, so none is started",
                hint="create it (zfs create -o mountpoint=/var/lib/bootagent POOL/bootagent) and try again",
            )
        target = self.reset_target(progress, actor)
        start_reset(target, plan)
        return self._after_reset(plan)

    def resume_reset(self, progress: Progress) -> BootDecision | None:
        """Carry on a reset a power cut interrupted (it was confirmed when it began), if there is one."""
        if self.reset_store().plan() is None:
            return None
        target = self.reset_target(progress, Actor.AUTOMATIC)
        plan = resume(target)
        return self._after_reset(plan) if plan is not None else None

    def _after_reset(self, plan: ResetPlan) -> BootDecision:
        self._inventory = None
        return self.boot(plan.new_environment)

    def reset_store(self) -> ResetStore:
        return ResetStore(self.state_directory())

    def clear_reset_flag(self, progress: Progress) -> None:
        """A GRUB flag with nothing to carry on (it could not be cleared at the end): clear it now."""
        set_flag(self.envs(progress, write=True).boot, None)

    # --- the hand-over -------------------------------------------------------------------------------
    def hand_over(self, decision: BootDecision) -> None:
        """Pivot: tell Debian's zfs script which dataset to mount as the root, with the pool exported.

        initramfs-tools' /init sources /conf/param.conf after every script, so the line is shell: the value
        is quoted. Only a dataset that is exactly <pool>/<root>/<name>, with a name the rule allows, is
        handed over; anything else would let Debian's script boot another environment."""
        expected = self.config.environment_dataset(self.pool, decision.environment)
        if decision.dataset != expected:
            raise RefusedError(
                f"refusing to hand over {shown(decision.dataset)}: it is not the dataset of "
                f"{shown(decision.environment)} ({expected})"
            )
        self.close()
        with open(self.paths.param_conf, "a", encoding="utf-8") as fh:
            fh.write(f"ROOT={shlex.quote('ZFS=' + decision.dataset)}\n")
            fh.flush()
            os.fsync(fh.fileno())
        LOG.info("handing over: root=ZFS=%s", decision.dataset)

    def boot_own_kernel(self, decision: BootDecision) -> None:
        """Kernel pairing: kexec the environment's own kernel and initramfs; if that cannot be done, a
        one-shot GRUB choice and a reboot. Does not return on success."""
        env = self.inventory().find(decision.environment)
        cmdline = cmdline_for(self.params, root=decision.dataset, drop_agent=True, kexeced=True)
        try:
            with self._peek(decision.dataset, env.boot_dataset) as tree:
                kernel = choose_kernel(tree, running=self.running_release, preferred=env.kernel)
                if kernel is None or not kernel.kernel:
                    raise RefusedError(f"{decision.environment} has no kernel to boot")
                argv = ["kexec", "-l", kernel.kernel, f"--command-line={cmdline}"]
                if kernel.initrd:
                    argv.insert(3, f"--initrd={kernel.initrd}")
                self.runner(argv, timeout=120)
            self.close()
            LOG.info("kexec into %s (kernel %s)", decision.dataset, kernel.release)
            self.runner(["kexec", "-e"], timeout=60)
        except CommandError as exc:
            LOG.error("kexec failed (%s); falling back to a one-shot GRUB boot and a reboot", exc)
            self.envs(write=True).activate(decision.environment, once=True)
            self.close()
            self.runner(["reboot", "-f"], check=False)
