"""Drive a test bed guest: QEMU (TCG) on a throwaway qcow2 overlay, serial console, QMP power control."""

from __future__ import annotations

import base64
import codecs
import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from testbed.qmp import QMP
from testbed.run import run
from testbed.screen import ConsoleScreen

DISK_SERIAL = "bootagent0"
GRUB_MENU = r", boot environment "  # bootagent's titles, and the test bed's own first-boot entry
LOGIN_DONE = r"login: root \(automatic login\)"
SHELL_PROMPT = r"[\r\n][^\r\n]*@bootagent-vm:[^\r\n]*# "
BOOT_TIMEOUT = 300.0
BUILD_CPUS = 2  # a build stage's guest runs alone: two vCPUs (MTTCG) roughly halve its boot


def scenario_cpus() -> int:
    """vCPUs of a scenario's guest: BOOTAGENT_VM_CPUS (scripts/test sets host cores / guests at a time), else
    BUILD_CPUS. Two guests of two vCPUs each on two host cores boot about 15 % slower than two of one each
    (measured; 4 busy vCPU threads on 2 cores, probably preempted while holding guest locks)."""
    value = os.environ.get("BOOTAGENT_VM_CPUS", "")
    if not value:
        return BUILD_CPUS
    if not value.isdigit() or int(value) < 1:
        raise MachineError(f"BOOTAGENT_VM_CPUS={value!r}: expected a whole number of vCPUs, 1 or more")
    return int(value)


# (what, seconds) of every boot and resume that reached the root shell, for the tier's summary of where its
# time goes (tests/vm/conftest.py prints it)
TIMINGS: list[tuple[str, float]] = []


class MachineError(RuntimeError):
    """The guest did not do what was expected; carries the tail of the console."""


class ConsoleTimeout(MachineError):
    pass


class ConsoleClosed(MachineError):
    pass


def _console_screen() -> ConsoleScreen | None:
    """The console's screen, where pyte is there (the scenarios' Python); the image build has none."""
    try:
        return ConsoleScreen()
    except ImportError:
        return None


def image_format(path: Path) -> str:
    return "qcow2" if path.suffix == ".qcow2" else "raw"


class Machine:
    """One guest on its own overlay over ``base``. The overlay survives power cuts and reboots."""

    def __init__(
        self,
        base: Path,
        workdir: Path,
        *,
        share: Path | None = None,
        memory_mb: int = 2048,
        smp: int = BUILD_CPUS,
        extra_args: list[str] | None = None,
        overlay: Path | None = None,
    ) -> None:
        self.base = base
        self.workdir = workdir
        self.share = share
        self.memory_mb = memory_mb
        self.smp = smp
        self.extra_args = list(extra_args or [])
        workdir.mkdir(parents=True, exist_ok=True)
        self.overlay = overlay if overlay is not None else workdir / "overlay.qcow2"
        self.log_path = workdir / "console.log"
        # unix socket paths are limited to 108 bytes: keep them short, away from deep test directories
        self._sockdir = Path(tempfile.mkdtemp(prefix="tb-"))
        self._serial_path = self._sockdir / "serial.sock"
        self._qmp_path = self._sockdir / "qmp.sock"
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._qmp: QMP | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._buf = ""
        self._pos = 0
        self._screen = _console_screen()
        self._closed = True
        self.boots = 0
        self._boot_started = time.monotonic()
        self._life = threading.RLock()  # starting and stopping QEMU: the caller's thread or the reader's
        self._stopping = False  # QEMU is being stopped on purpose: its exit is no reset
        self.restarts = 0  # QEMU processes started for a guest reset

    # ------------------------------------------------------------ lifecycle

    def start(self, *, incoming: Path | None = None) -> None:
        with self._life:
            self._stopping = False
            self._start(incoming)

    def _start(self, incoming: Path | None) -> None:
        """Power on (creating the overlay on the first start only). With `incoming`, the guest is not booted
        but resumed from a state saved by `save_state` (the overlay must sit on that state's disk)."""
        if self.running:
            raise MachineError("the machine is already running")
        if not self.overlay.exists():
            run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-b",
                    str(self.base),
                    "-F",
                    image_format(self.base),
                    str(self.overlay),
                ]
            )
        for sock in (self._serial_path, self._qmp_path):
            sock.unlink(missing_ok=True)
        argv = [
            "qemu-system-x86_64",
            "-machine",
            "pc",
            "-smp",
            str(self.smp),
            "-m",
            str(self.memory_mb),
            "-display",
            "none",
            "-nic",
            "none",
            "-vga",
            "none",
            "-monitor",
            "none",
            "-drive",
            f"file={self.overlay},format=qcow2,if=none,id=disk0,cache=writeback",
            "-device",
            f"virtio-blk-pci,drive=disk0,serial={DISK_SERIAL}",
            # a hardware watchdog, as servers have: the boot deadline of bootagent's unattended recovery
            "-device",
            "i6300esb",
            "-chardev",
            f"socket,id=ser0,path={self._serial_path},server=on,wait=on",
            "-serial",
            "chardev:ser0",
            "-qmp",
            f"unix:{self._qmp_path},server=on,wait=off",
            # a reset of the guest (its reboot, the watchdog, a panic's reboot, QMP system_reset) ends this
            # QEMU, and the console reader starts a new one on the same overlay (see _read_loop): under TCG
            # a guest rebooted inside one QEMU process gets slower boot after boot (GRUB's part went from
            # 5 s to 17, 19 and up to 50 s; in a fresh process it is 5 s every time)
            "-no-reboot",
        ]
        if self.share is not None:
            argv += ["-virtfs", f"local,path={self.share},mount_tag=share,security_model=none,id=share"]
        argv += self.extra_args
        if incoming is not None:
            argv += ["-incoming", f"exec:cat {shlex.quote(str(incoming))}"]
        with self.log_path.open("a") as log:
            stamp = time.strftime("%H:%M:%S")
            what = f"resume from {incoming.name}" if incoming else f"power on (boot {self.boots + 1})"
            log.write(f"\n===== testbed: {what} {stamp} =====\n")
        qemu_log = (self.workdir / "qemu.log").open("ab")
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=qemu_log)
        qemu_log.close()
        self._sock = self._connect(self._serial_path)
        if self._screen is not None:
            with self._cond:
                self._screen.power_cycle()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="console", daemon=True)
        self._reader.start()
        self._qmp = QMP(self._qmp_path)
        self._qmp.connect()
        self.boots += 1
        self._boot_started = time.monotonic()

    def _connect(self, path: Path, timeout: float = 30) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise MachineError(f"QEMU exited at start: {(self.workdir / 'qemu.log').read_text()[-2000:]}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise MachineError(f"cannot connect to the serial socket {path}") from None
                time.sleep(0.05)

    def _read_loop(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        sock = self._sock
        assert sock is not None
        with self.log_path.open("ab") as log:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    log.write(data)
                    log.flush()
                text = decoder.decode(data, final=not data)
                with self._cond:
                    self._buf += text
                    if self._screen is not None and text:
                        self._screen.feed(text, len(self._buf))
                    self._cond.notify_all()
                if not data:
                    break
        # the console closed: QEMU is gone; a guest reset powers on a new one (which has its own reader)
        if not self._after_exit(sock):
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _after_exit(self, sock: socket.socket) -> bool:
        """After a guest reset (QEMU runs with -no-reboot) power on a new QEMU on the same overlay, as the
        reset would have restarted the machine; True when it did."""
        with self._life:
            proc, qmp = self._proc, self._qmp
            if self._stopping or proc is None or sock is not self._sock:
                return False
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                return False
            reason = qmp.shutdown_reason() if qmp is not None else None
            if reason not in ("guest-reset", "host-qmp-system-reset", "guest-panic"):
                return False
            if qmp is not None:
                qmp.close()
            sock.close()
            with self.log_path.open("a") as log:
                log.write(f"\n===== testbed: reset ({reason}): a new QEMU =====\n")
            self.restarts += 1
            boot_started = self._boot_started  # a reboot is timed from its start (reboot(), hard_reset())
            try:
                self._start(None)
                self._boot_started = boot_started
            except (MachineError, OSError) as exc:
                with self.log_path.open("a") as log:
                    log.write(f"\n===== testbed: the new QEMU did not start: {exc} =====\n")
                return False
            return True

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_exit(self, timeout: float = 120) -> int:
        """Wait for QEMU to exit after a guest power-off (after a reset, for the new QEMU's exit)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            assert proc is not None
            try:
                code = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise ConsoleTimeout(f"QEMU still running after {timeout:.0f} s\n{self.tail()}") from None
            reader = self._reader
            if reader is not None:  # it decides whether that exit was a reset (and starts a new QEMU)
                reader.join(max(0.1, deadline - time.monotonic()))
            if self._proc is proc:
                break
        self._teardown()
        return code

    def _teardown(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def kill(self) -> None:
        """Stop QEMU at once (no flush of anything QEMU still holds)."""
        with self._life:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
                self._proc.wait(30)
        self._teardown()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self) -> Machine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------ saved states

    def save_state(self, state: Path, timeout: float = 600) -> None:
        """Stop the guest and write its RAM and device state to `state` (a QEMU migration into a file), then
        quit: the overlay holds the disk exactly as that state expects it, so guests resumed from it (each on
        an overlay of its own over this one) carry on from this moment."""
        assert self._qmp is not None
        self._qmp.execute("stop")
        self._qmp.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(state))}"})
        deadline = time.monotonic() + timeout
        while True:
            status = (self._qmp.execute("query-migrate") or {}).get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise MachineError(
                    f"saving the guest's state ended as {status!r} after {timeout:.0f} s at most"
                )
            time.sleep(0.2)
        self._qmp.execute("quit")
        self.wait_exit(120)

    def resume(self, state: Path, timeout: float = 300) -> None:
        """Start from a saved state (see save_state): the guest carries on where it was saved, at its root
        shell; its clock is set to now."""
        started = time.monotonic()
        self.start(incoming=state)
        assert self._qmp is not None
        # the state was saved stopped: once it is loaded the guest waits, paused, to be continued
        while (status := (self._qmp.execute("query-status") or {}).get("status")) != "running":
            if status in ("paused", "postmigrate", "prelaunch"):
                self._qmp.execute("cont")
                continue
            if not self.running or time.monotonic() - started > timeout:
                raise MachineError(
                    f"the guest did not resume from {state} within {timeout:.0f} s\n"
                    f"{(self.workdir / 'qemu.log').read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.2)
        token = secrets.token_hex(4)
        self.sendline(f"date -s @{int(time.time())} >/dev/null; echo __RESU''MED_{token}")
        self.expect(f"__RESUMED_{token}", timeout)
        TIMINGS.append(("resume", time.monotonic() - started))

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """A QMP command to this guest's QEMU (device hot-plug, ...)."""
        if self._qmp is None:
            raise MachineError("the machine is not running")
        return self._qmp.execute(command, arguments)

    # ------------------------------------------------------------ power

    def hard_reset(self) -> None:
        """The reset button: the guest's RAM (and its unwritten caches) is lost. Like every reset here it
        ends this QEMU and powers on a new one on the same overlay (see _after_exit)."""
        assert self._qmp is not None
        with self.log_path.open("a") as log:
            log.write(f"\n===== testbed: hard reset {time.strftime('%H:%M:%S')} =====\n")
        self._boot_started = time.monotonic()
        self._qmp.execute("system_reset")

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL QEMU. What the guest had not written out is lost, and so is anything
        QEMU had not yet submitted to the overlay (no drain, no flush as QMP 'quit' or 'stop' would do)."""
        with self.log_path.open("a") as log:
            log.write(f"\n===== testbed: POWER CUT {time.strftime('%H:%M:%S')} =====\n")
        self.kill()

    def boot_again(self) -> None:
        """Power on again on the same overlay (after a power cut or power-off)."""
        self.kill()
        self.start()

    # ------------------------------------------------------------ console

    def tail(self, chars: int = 3000) -> str:
        with self._cond:
            return self._buf[-chars:]

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait for regex ``pattern`` in the console output after the last match, or on a row of the
        console's screen drawn since then (testbed/screen.py: the agent's menu writes only the cells that
        change, so its texts reach the byte stream in pieces); return the match that came first."""
        regex = re.compile(pattern, re.DOTALL)
        deadline = time.monotonic() + timeout
        screen = self._screen
        with self._cond:
            scan = screen.start if screen is not None else 0
            while True:
                match = regex.search(self._buf, self._pos)
                shown = None
                if screen is not None:
                    shown, scan = screen.search(regex, scan)
                if shown is not None and (match is None or shown[1].offset < match.end()):
                    assert screen is not None
                    position, snap, on_screen = shown
                    self._pos = max(self._pos, snap.offset)
                    screen.matched_at(position)
                    return on_screen
                if match:
                    self._pos = match.end()
                    if screen is not None:
                        screen.matched_offset(match.end())
                    return match
                if self._closed:
                    raise ConsoleClosed(f"console closed while waiting for {pattern!r}\n{self._buf[-3000:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shows = f"--- screen ---\n{screen.text()}\n" if screen is not None else ""
                    raise ConsoleTimeout(
                        f"no {pattern!r} within {timeout:.0f} s\n{shows}--- console tail ---\n"
                        f"{self._buf[-3000:]}"
                    )
                self._cond.wait(min(remaining, 1.0))

    def send(self, keys: str) -> None:
        if self._sock is None:
            raise MachineError("the machine is not running")
        self._sock.sendall(keys.encode())

    def sendline(self, line: str) -> None:
        self.send(line + "\n")

    def wait_for_grub(self, timeout: float = 120) -> None:
        self.expect(GRUB_MENU, timeout)

    def choose_grub_entry(self, downs: int) -> None:
        """At the GRUB menu: move down ``downs`` entries and boot it."""
        for _ in range(downs):
            self.send("\x1b[B")
            time.sleep(0.3)
        self.send("\r")

    def wait_for_boot(
        self, timeout: float = BOOT_TIMEOUT, *, grub: bool = True, skip_menu: bool = True
    ) -> None:
        """Wait for the GRUB menu (optional), boot the default entry at once, wait for the root shell."""
        deadline = time.monotonic() + timeout
        if grub:
            self.wait_for_grub(min(120.0, timeout))
            if skip_menu:
                time.sleep(0.5)
                self.send("\r")
        self.expect(LOGIN_DONE, deadline - time.monotonic())
        self.expect(SHELL_PROMPT, deadline - time.monotonic())
        self._setup_shell(deadline - time.monotonic())
        self._wait_for_startup(deadline - time.monotonic())
        TIMINGS.append(("boot", time.monotonic() - self._boot_started))

    def _wait_for_startup(self, timeout: float) -> None:
        """The login prompt comes before systemd is done (a `nofail` mount like /boot/grub may still be on
        its way, more so on a busy host): wait for the startup jobs, and name any unit that failed."""
        code, state = self.run("systemctl is-system-running --wait", max(timeout, 60))
        if code != 0:
            failed = self.run("systemctl --failed --no-legend --plain", 60)[1]
            with self.log_path.open("a") as log:
                log.write(f"\n===== testbed: system {state.strip()}; failed units: {failed.strip()} =====\n")

    def _setup_shell(self, timeout: float) -> None:
        # a plain, echo-free shell: no readline (it echoes by itself), no prompt, no console printk noise
        self.sendline(
            "exec env PS1= PS2= PROMPT_COMMAND= TERM=dumb HISTFILE=/dev/null" " bash --noediting --norc -i"
        )
        time.sleep(0.5)
        token = secrets.token_hex(4)
        self.sendline(f"stty -echo; dmesg -n 1; echo __REA''DY_{token}")
        self.expect(f"__READY_{token}", max(timeout, 30))

    def run(self, command: str, timeout: float = 120) -> tuple[int, str]:
        """Run ``command`` with bash in the guest root shell; return (exit code, stdout+stderr)."""
        token = secrets.token_hex(6)
        encoded = base64.b64encode(command.encode()).decode()
        self.sendline(
            f"echo __BE''GIN_{token}; bash -c \"$(echo {encoded} | base64 -d)\" </dev/null 2>&1; "
            f"echo __E''ND_{token}:$?:"
        )
        match = self.expect(rf"__BEGIN_{token}\r?\n(.*?)__END_{token}:(\d+):", timeout)
        output = match.group(1).replace("\r\n", "\n").replace("\r", "")
        return int(match.group(2)), output

    def put_file(self, path: str, data: bytes, timeout: float = 300) -> None:
        """Write `data` to `path` in the guest, over the console in pieces (a terminal line holds at most
        4095 characters in canonical mode; a longer command never reaches the shell whole)."""
        encoded = base64.b64encode(data).decode()
        self.check(f": > {shlex.quote(path)}.b64", timeout)
        for start in range(0, len(encoded), 2000):
            self.check(f"printf %s {encoded[start : start + 2000]} >> {shlex.quote(path)}.b64", timeout)
        self.check(f"base64 -d {shlex.quote(path)}.b64 > {shlex.quote(path)} && rm {shlex.quote(path)}.b64")

    def check(self, command: str, timeout: float = 120) -> str:
        """run() that raises on a non-zero exit code."""
        code, output = self.run(command, timeout)
        if code != 0:
            raise MachineError(f"guest command failed with exit code {code}: {command}\n{output}")
        return output

    def reboot(self) -> None:
        """A clean reboot from the guest (systemd); follow with wait_for_boot()."""
        self._boot_started = time.monotonic()
        self.sendline("systemctl reboot")

    def poweroff(self, timeout: float = 120) -> None:
        """A clean power-off from the guest; waits for QEMU to exit."""
        self.sendline("systemctl poweroff")
        self.wait_exit(timeout)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
