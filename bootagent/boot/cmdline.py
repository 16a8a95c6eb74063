"""The kernel command line, parsed once at the edge into a frozen value.

Parameters bootagent reads (everything else is ignored):

  root=ZFS=<pool>/<root>/<env>   the root Debian's zfs initramfs will mount (also root=zfs:..., zfs:AUTO)
  bootagent=menu|auto|recover|off  menu: the interactive menu; auto: unattended checks only; recover: the
                                 unattended recovery after too many failed boots; off/absent: nothing
  bootagent.action=<action>      an action to run without a person (same safety rules as the menu):
                                   boot:<env>  boot-snapshot:<env>@<snap>  rollback[:<steps>]  rollforward
                                   reset-keep-data (erase-all is never done without a person)
  bootagent.timeout=<seconds>    the menu countdown (overrides the config)
  bootagent.failed=<n>           the failed boots in a row GRUB counted (recover mode, and the recovery menu)
  bootagent.limit=<n>            GRUB's boot-count limit (the recovery menu shows the counter against it)
  bootagent.rows=<n> bootagent.cols=<n>   the size of a serial console that cannot report its own
  bootagent.reset=keep-data|erase-all|resume   with bootagent=reset: the factory reset GRUB's entry chose
                                 (asked for with its typed word), or carry on the one under way
  bootagent.kexec=1              set on a kernel the agent kexec'ed: do not show the menu again, just boot
  console=<dev>[,<options>]      the LAST one is the controlling console
  bootagent.debug                verbose logging

Bad values never stop a boot: they are reported in `problems` and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bootagent.errors import InvalidNameError
from bootagent.model import split_target, validate_name

RESET_CHOICES = ("keep-data", "erase-all", "resume")
SERIAL_PREFIXES = ("ttyS", "ttyAMA", "ttyUSB", "ttyACM", "hvc", "ttysclp")


class AgentMode(StrEnum):
    OFF = "off"
    MENU = "menu"
    AUTO = "auto"
    RECOVER = "recover"  # GRUB's default entry at the boot-count limit: the unattended recovery ladder
    RESET = "reset"  # a factory reset: chosen in GRUB (bootagent.reset=MODE), or one under way (=resume)


class ActionKind(StrEnum):
    BOOT = "boot"
    BOOT_SNAPSHOT = "boot-snapshot"
    ROLLBACK = "rollback"
    ROLLFORWARD = "rollforward"
    RESET_KEEP_DATA = "reset-keep-data"  # unattended: only the reset that keeps the customer's data


@dataclass(frozen=True)
class CmdlineAction:
    kind: ActionKind
    target: str | None = None  # env for boot, env@snap for boot-snapshot
    steps: int | None = None


@dataclass(frozen=True)
class BootParams:
    raw: str
    mode: AgentMode = AgentMode.OFF
    root: str | None = None  # "<pool>/<root>/<env>" or None (absent or zfs:AUTO)
    pool: str | None = None
    action: CmdlineAction | None = None
    timeout: int | None = None
    rows: int | None = None
    cols: int | None = None
    console: str | None = None  # e.g. "ttyS0" (options stripped)
    consoles: tuple[str, ...] = ()  # every console=, in order (the last one is `console`)
    failed: int | None = None  # bootagent.failed: the failed boots in a row GRUB counted
    limit: int | None = None  # bootagent.limit: GRUB's boot-count limit (on the recovery menu entry)
    kexeced: bool = False
    debug: bool = False
    reset: str | None = None  # bootagent.reset: keep-data, erase-all or resume
    problems: tuple[str, ...] = ()

    @property
    def serial_console(self) -> bool:
        return (self.console or "").startswith(SERIAL_PREFIXES)


def _int(value: str, name: str, low: int, high: int, problems: list[str]) -> int | None:
    try:
        number = int(value, 10)
    except ValueError:
        problems.append(f"{name}={value!r}: not a number; ignored")
        return None
    if not low <= number <= high:
        problems.append(f"{name}={number}: outside {low}..{high}; ignored")
        return None
    return number


def _parse_action(value: str, problems: list[str]) -> CmdlineAction | None:
    kind_text, _, arg = value.partition(":")
    try:
        kind = ActionKind(kind_text)
    except ValueError:
        valid = ", ".join(k.value for k in ActionKind)
        problems.append(f"bootagent.action={value!r}: unknown action (valid: {valid}); ignored")
        return None
    try:
        if kind is ActionKind.BOOT:
            return CmdlineAction(kind, target=validate_name(arg, what="environment name"))
        if kind is ActionKind.BOOT_SNAPSHOT:
            env, snap = split_target(arg)
            if snap is None:
                problems.append(f"bootagent.action={value!r}: needs ENV@SNAPSHOT; ignored")
                return None
            return CmdlineAction(kind, target=arg)
        if kind is ActionKind.ROLLBACK:
            steps = _int(arg, "bootagent.action=rollback", 1, 1000, problems) if arg else 1
            return CmdlineAction(kind, steps=steps) if steps is not None else None
        return CmdlineAction(kind)
    except InvalidNameError as exc:
        problems.append(f"bootagent.action={value!r}: {exc.message}; ignored")
        return None


def split_words(text: str) -> tuple[list[str], bool]:
    """Split like the kernel: on white space outside double quotes; the quotes are removed. (Single quotes
    mean nothing to the kernel.) Returns the words and whether the quotes were balanced."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        words.append("".join(current))
    return words, not quoted


def parse_cmdline(text: str) -> BootParams:
    """Parse /proc/cmdline. Never raises."""
    problems: list[str] = []
    words, balanced = split_words(text)
    if not balanced:
        problems.append("unbalanced quotes on the kernel command line")
    values: dict[str, str] = {}
    flags: set[str] = set()
    consoles: list[str] = []
    for word in words:
        key, sep, value = word.partition("=")
        if key == "console" and sep:
            consoles.append(value.split(",", 1)[0])
        elif sep:
            values[key] = value  # the last one wins, as in the kernel
        else:
            flags.add(key)

    mode = AgentMode.OFF
    if "bootagent" in values:
        try:
            mode = AgentMode(values["bootagent"])
        except ValueError:
            problems.append(
                f"bootagent={values['bootagent']!r}: expected menu, auto, recover, reset or off; using menu"
            )
            mode = AgentMode.MENU
    elif "bootagent" in flags:
        mode = AgentMode.MENU

    root: str | None = None
    pool: str | None = None
    raw_root = values.get("root", "")
    if raw_root.startswith(("ZFS=", "zfs:", "zfs=")):
        spec = raw_root[4:]
        if spec and spec.upper() != "AUTO":
            root = spec
            pool = spec.split("/", 1)[0]
    if "rpool" in values and pool is None:
        pool = values["rpool"]

    action = _parse_action(values["bootagent.action"], problems) if "bootagent.action" in values else None
    if action is not None and mode is AgentMode.OFF:
        mode = AgentMode.AUTO

    reset = values.get("bootagent.reset")
    if reset is not None and reset not in RESET_CHOICES:
        problems.append(f"bootagent.reset={reset!r}: expected {', '.join(RESET_CHOICES)}; ignored")
        reset = None
    if mode is AgentMode.RESET and reset is None:
        problems.append("bootagent=reset without a valid bootagent.reset: the menu instead")
        mode = AgentMode.MENU

    return BootParams(
        raw=text,
        reset=reset,
        mode=mode,
        root=root,
        pool=pool,
        action=action,
        timeout=_int(values["bootagent.timeout"], "bootagent.timeout", 0, 3600, problems)
        if "bootagent.timeout" in values
        else None,
        rows=_int(values["bootagent.rows"], "bootagent.rows", 10, 500, problems)
        if "bootagent.rows" in values
        else None,
        cols=_int(values["bootagent.cols"], "bootagent.cols", 40, 1000, problems)
        if "bootagent.cols" in values
        else None,
        failed=_int(values["bootagent.failed"], "bootagent.failed", 0, 1000, problems)
        if "bootagent.failed" in values
        else None,
        limit=_int(values["bootagent.limit"], "bootagent.limit", 1, 1000, problems)
        if "bootagent.limit" in values
        else None,
        console=consoles[-1] if consoles else None,
        consoles=tuple(consoles),
        kexeced=values.get("bootagent.kexec") == "1",
        debug="bootagent.debug" in flags or values.get("bootagent.debug") in {"1", "yes", "on"},
        problems=tuple(problems),
    )


def kernel_quote(word: str) -> str:
    """A word as the kernel reads it back: a value with white space goes in double quotes (`key="a b"`).
    Words never hold a double quote: split_words removes them, as the kernel does."""
    if not any(ch.isspace() for ch in word):
        return word
    key, sep, value = word.partition("=")
    if sep and not any(ch.isspace() for ch in key):
        return f'{key}="{value}"'
    return f'"{word}"'


AGENT_ONE_SHOT = frozenset(
    {"bootagent", "bootagent.action", "bootagent.failed", "bootagent.limit", "bootagent.reset"}
)


def cmdline_for(params: BootParams, *, root: str, drop_agent: bool, kexeced: bool) -> str:
    """A command line for booting `root` (a dataset): the same arguments, split and quoted by the kernel's
    own rules, with every root= removed and the chosen one last (the kernel and initramfs-tools' /init both
    take the last one), the agent's one-shot arguments removed, and bootagent.kexec=1 when the agent kexecs
    the kernel."""
    if any(ch.isspace() or ch == '"' for ch in root):
        raise ValueError(f"a root the kernel command line cannot carry: {root!r}")
    words, _balanced = split_words(params.raw)
    kept = []
    for word in words:
        key = word.partition("=")[0]
        if key in {"root", "bootagent.kexec", "BOOT_IMAGE", "bootfs"}:
            continue
        if drop_agent and key in AGENT_ONE_SHOT:
            continue
        kept.append(word)
    kept.append(f"root=ZFS={root}")
    if kexeced:
        kept.append("bootagent.kexec=1")
    return " ".join(kernel_quote(w) for w in kept)
