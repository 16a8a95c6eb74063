"""bootagent's part of grub.cfg, from the same model, config and name rule as the command line.

Pure: `build(MenuInput) -> Menu` decides the entries, `render(Menu) -> str` writes them, every value through
bootagent.grub.script. What `00_header` owns (terminal, serial, timeout, `default`, `load_env` of GRUB's own
variables) is left to it; what /etc/default/grub says about kernel arguments and the distributor is honoured
the way `10_linux` honours it:

- the **default entry** boots the environment GRUB picks at boot time from grubenv: `bootagent_once` (one
  boot only; cleared with one `save_env` before booting), else `bootagent_default`, else the environment
  baked in here (the pool's `bootfs` when this was generated). A value is used only if it follows the name
  rule and the environment has a kernel; otherwise GRUB says so and uses the next choice;
- the **recovery entry** boots the same environment with `bootagent=menu` and also loads the agent's own
  image, `/boot/bootagent.img`;
- **one entry per environment**, in a submenu unless `GRUB_DISABLE_SUBMENU` is set (as 10_linux does), for
  the newest `entry_limit` of them (`grub_entries` in the config) and, whatever their age, the fallback and
  the last-known-good; the older ones are left to the agent's menu, which lists any number of them, with
  one entry at the end that opens it. GRUB reads and parses all of grub.cfg at every boot (about 1 kB an
  environment), so 500 environments would cost every boot, not only the ones that show the menu.
  Environments whose names the rule refuses are left out, each with a warning that says why.

Kernel arguments: `GRUB_CMDLINE_LINUX` on every entry, `GRUB_CMDLINE_LINUX_DEFAULT` on all but the recovery
entry (as 10_linux does for its recovery mode). They are split into words the way the kernel splits them
and each word is quoted for GRUB, so a `;` or a newline in /etc/default/grub can never become a GRUB command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bootagent.boot.cmdline import split_words
from bootagent.grub import counting
from bootagent.grub.counting import Counting
from bootagent.grub.script import Var, command, quote, word
from bootagent.names import GRUB_REGEXP, name_problem, shown
from bootagent.recovery.counter import TRIES_VAR
from bootagent.reset.store import RESET_VAR

DEV = Var("bootagent_dev")
BOOT_DEV = Var("bootagent_bootdev")
ENV_DEV = Var("bootagent_envdev")
BE = Var("bootagent_be")
AGENT_IMAGE = "bootagent.img"
DEFAULT_ID = "bootagent-default"
RECOVERY_ID = "bootagent-recovery"
SUBMENU_ID = "bootagent-environments"
MORE_ID = "bootagent-more"
RESET = Var(RESET_VAR)
RESET_IDS = {"keep-data": "bootagent-reset-keep-data", "erase-all": "bootagent-reset-erase-all"}
RESET_TITLES = {
    "keep-data": "factory reset, keeping the customer's data",
    "erase-all": "factory reset, ERASING EVERYTHING",
}
ENTRY_CLASSES = ("--class", "gnu-linux", "--class", "gnu", "--class", "os")


@dataclass(frozen=True)
class GrubSettings:
    """What /etc/default/grub says, as grub-mkconfig exports it to the grub.d scripts."""

    distributor: str = ""
    cmdline_linux: tuple[str, ...] = ()
    cmdline_linux_default: tuple[str, ...] = ()
    submenu: bool = True

    @property
    def os_name(self) -> str:
        """As 10_linux names the system in its titles."""
        if not self.distributor:
            return "GNU/Linux"
        if self.distributor in ("Ubuntu", "Kubuntu"):
            return self.distributor
        return f"{self.distributor} GNU/Linux"

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> tuple[GrubSettings, tuple[str, ...]]:
        """The settings, and a warning for every value that had to be cleaned."""
        warnings: list[str] = []

        def args(key: str) -> tuple[str, ...]:
            words, problems = kernel_words(environ.get(key, ""))
            warnings.extend(f"{key}: {p}" for p in problems)
            return words

        distributor = " ".join(environ.get("GRUB_DISTRIBUTOR", "").split())
        if any(not ch.isprintable() for ch in distributor):
            warnings.append("GRUB_DISTRIBUTOR holds control characters; they are left out of the titles")
            distributor = "".join(ch for ch in distributor if ch.isprintable())
        disabled = environ.get("GRUB_DISABLE_SUBMENU", "").strip().lower() in {"y", "yes", "true"}
        return (
            cls(
                distributor=distributor,
                cmdline_linux=args("GRUB_CMDLINE_LINUX"),
                cmdline_linux_default=args("GRUB_CMDLINE_LINUX_DEFAULT"),
                submenu=not disabled,
            ),
            tuple(warnings),
        )


def kernel_words(text: str) -> tuple[tuple[str, ...], list[str]]:
    """Kernel arguments as the kernel reads them (white space outside double quotes separates; the quotes
    group), with the words no kernel command line can carry dropped and reported."""
    problems: list[str] = []
    words, balanced = split_words(text)
    if not balanced:
        problems.append("unbalanced double quotes; the rest of the line is one argument")
    kept: list[str] = []
    for w in words:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in w):
            problems.append(f"the argument {shown(w)} holds control characters and is left out")
        elif '"' in w or "\\" in w:
            problems.append(f"the argument {shown(w)} holds a quote or a backslash and is left out")
        else:
            kept.append(w)
    return tuple(kept), problems


@dataclass(frozen=True)
class GrubenvPlace:
    """Where GRUB finds the writable grubenv: on the file system with this UUID at `path`, or (uuid None) in
    GRUB's `$prefix` directory."""

    uuid: str | None = None
    path: str = "/grubenv"


@dataclass(frozen=True)
class Protection:
    """GRUB's own password in front of the destructive entries: `superusers` and `password_pbkdf2`; every
    other bootagent entry is --unrestricted."""

    user: str
    password_pbkdf2: str


@dataclass(frozen=True)
class BootPool:
    """The HOWTO's boot pool: environment NAME's kernels are in <pool>/<root>/NAME, at its top."""

    pool: str
    root: str  # relative to the pool, e.g. "BOOT"
    uuid: str | None = None  # GRUB's fs_uuid (the pool's guid in hex)


@dataclass(frozen=True)
class MenuInput:
    pool: str
    root: str  # the environments' container relative to the pool (layout.root), e.g. "ROOT"
    environments: tuple[str, ...]  # names, oldest first
    fallback: str | None  # what the default entry boots when grubenv names nothing usable
    pool_uuid: str | None = None  # GRUB's fs_uuid of the pool (its guid in hex)
    grubenv: GrubenvPlace = field(default_factory=GrubenvPlace)
    settings: GrubSettings = field(default_factory=GrubSettings)
    counting: Counting = field(default_factory=Counting)
    protection: Protection | None = None
    reset_entries: bool = True  # the two factory reset entries
    boot: BootPool | None = None  # each environment's /boot on a pool of its own (bootagent.pairs)
    entry_limit: int = 0  # entries for at most this many environments, the newest (0: every one)
    always: tuple[str, ...] = ()  # environments with an entry whatever the limit (the last-known-good)


@dataclass(frozen=True)
class Menu:
    """What goes into grub.cfg, or nothing (`usable` False) with the reasons in `warnings`."""

    input: MenuInput | None
    environments: tuple[str, ...]  # the ones that get an entry
    warnings: tuple[str, ...]
    more: int = 0  # bootable environments left to the agent's menu (over the entry limit)

    @property
    def usable(self) -> bool:
        return self.input is not None and self.input.fallback is not None


def build(data: MenuInput, warnings: Sequence[str] = ()) -> Menu:
    notes = list(warnings)
    bootable: list[str] = []
    for name in data.environments:
        problem = name_problem(name)
        if problem is None:
            bootable.append(name)
        else:
            notes.append(
                f"boot environment {shown(name)} gets no GRUB entry: {problem}; rename it with "
                f"'zfs rename {data.pool}/{data.root}/{name} {data.pool}/{data.root}/NEW-NAME'"
            )
    fallback = data.fallback if data.fallback in bootable else (bootable[0] if bootable else None)
    if data.fallback is not None and fallback != data.fallback and bootable:
        notes.append(
            f"the pool's bootfs names {shown(data.fallback)}, which gets no entry; "
            f"the menu falls back to {fallback}"
        )
    if fallback is None:
        notes.append(f"no bootable boot environment under {data.pool}/{data.root}: bootagent adds no entries")
        return Menu(None, (), tuple(notes))
    chosen = replace(data, environments=tuple(bootable), fallback=fallback)
    listed = within_limit(bootable, data.entry_limit, {fallback, *data.always})
    return Menu(chosen, listed, tuple(notes), more=len(bootable) - len(listed))


def within_limit(names: Sequence[str], limit: int, always: set[str]) -> tuple[str, ...]:
    """The environments that get an entry, oldest first: the newest `limit` (all when 0) and `always`."""
    if limit <= 0 or len(names) <= limit:
        return tuple(names)
    newest = set(names[-limit:])
    return tuple(n for n in names if n in newest or n in always)


# --- writing ---------------------------------------------------------------------------------------------
def _boot_path(data: MenuInput, env: str | Var, file: str) -> str:
    if data.boot is not None:  # the /boot half, on the boot pool
        return word("(", BOOT_DEV, f")/{data.boot.root}/", env, f"@/{file}")
    return word("(", DEV, f")/{data.root}/", env, f"@/boot/{file}")


def _search(var: Var, pool: str, uuid: str | None) -> list[str]:
    """Find a pool's device: by its guid, else by its name (GRUB's label of a ZFS pool)."""
    by_label = f"search --no-floppy --label --set={var.name} {quote(pool)}"
    if not uuid:
        return [by_label]
    return [
        f"search --no-floppy --fs-uuid --set={var.name} {quote(uuid)}",
        f"if [ -z {word(var)} ]; then",
        f"\t{by_label}",
        "fi",
    ]


def _choice(data: MenuInput, var: Var, indent: str) -> list[str]:
    """Take `var` as the environment if it is a valid name with a kernel; else say why not."""
    kernel = _boot_path(data, var, "vmlinuz")
    return [
        f"{indent}if regexp {quote(GRUB_REGEXP)} {word(var)}; then",
        f"{indent}\tif [ -s {kernel} ]; then",
        f"{indent}\t\tset bootagent_be={word(var)}",
        f"{indent}\telse",
        f"{indent}\t\techo {word('bootagent: no boot environment ', var, ', using ', BE)}",
        f"{indent}\tfi",
        f"{indent}else",
        f"{indent}\techo {word('bootagent: ', var, ' is not a boot environment name, using ', BE)}",
        f"{indent}fi",
    ]


def _preamble(data: MenuInput) -> list[str]:
    lines = [
        f"### bootagent: the boot environments of pool {data.pool} (bootagent grub-menu)",
        "insmod part_gpt",
        "insmod part_msdos",
        "insmod zfs",
        "insmod regexp",
        f"set bootagent_pool={quote(data.pool)}",
        f"set bootagent_fallback={quote(data.fallback or '')}",
        "set bootagent_dev=",
        # a submenu runs in a context of its own: only exported variables reach its entries
        "export bootagent_pool",
        "export bootagent_dev",
    ]
    if data.protection is not None:  # GRUB's superusers: restricted entries and editing need the password
        lines += [
            f"set superusers={quote(data.protection.user)}",
            command("password_pbkdf2", quote(data.protection.user), quote(data.protection.password_pbkdf2)),
        ]
    lines += _search(DEV, data.pool, data.pool_uuid)
    if data.boot is not None:
        lines += ["set bootagent_bootdev=", "export bootagent_bootdev"]
        lines += _search(BOOT_DEV, data.boot.pool, data.boot.uuid)
    if data.grubenv.uuid:
        lines += [
            "set bootagent_envdev=",
            f"search --no-floppy --fs-uuid --set=bootagent_envdev {quote(data.grubenv.uuid)}",
            f"set bootagent_env={word('(', ENV_DEV, ')' + data.grubenv.path)}",
        ]
    else:
        lines.append(f"set bootagent_env={word(Var('prefix'), data.grubenv.path)}")
    env = word(Var("bootagent_env"))
    agent = _boot_path(data, BE, AGENT_IMAGE)
    lines += [
        "set bootagent_default=",
        "set bootagent_once=",
        f"set {TRIES_VAR}=",
        f"set {RESET_VAR}=",
        f"if [ -s {env} ]; then",
        f"\tload_env -f {env} bootagent_default bootagent_once {TRIES_VAR} {RESET_VAR}",
        "fi",
        f"export {RESET_VAR}",
        f"set bootagent_be={word(Var('bootagent_fallback'))}",
        f"if [ -n {word(Var('bootagent_default'))} ]; then",
        *_choice(data, Var("bootagent_default"), "\t"),
        "fi",
        # the one-shot choice is cleared by the default entry when it boots it, in its one save_env
        f"if [ -n {word(Var('bootagent_once'))} ]; then",
        *_choice(data, Var("bootagent_once"), "\t"),
        "fi",
        *counting.decide(data.counting),
        f"set bootagent_title={word('boot environment ', BE)}",
        f"if [ {word(counting.RECOVER)} = 1 ]; then",
        f"\tif [ -s {agent} ]; then",
        "\t\tset bootagent_title="
        + word("unattended recovery after ", counting.TRIES, " failed boots of ", BE),
        "\telse",
        "\t\techo "
        + word(
            "bootagent: ",
            counting.TRIES,
            " failed boots of ",
            BE,
            f" and no /boot/{AGENT_IMAGE} to recover with: waiting for a person",
        ),
        "\t\tset bootagent_recover=",
        "\t\tset timeout=-1",
        "\tfi",
        "fi",
        f"if [ -n {word(RESET)} ]; then",
        "\tset bootagent_title=" + word("FACTORY RESET UNDER WAY (", RESET, "): every entry carries it on"),
        "fi",
        "export bootagent_be",  # the submenu's entries carry a reset under way on with it
    ]
    return lines


def _entry(
    data: MenuInput,
    title: str,
    ident: str,
    env: str | Var,
    *,
    recovery: bool,
    indent: str = "",
) -> list[str]:
    head = command("menuentry", title, *ENTRY_CLASSES, *_open(data), "--id", quote(ident), "{")
    inner = [f"\techo {word('bootagent: loading ', Var('bootagent_pool'), f'/{data.root}/', env)}"]
    inner += _boot_lines(data, env, recovery=recovery)
    lines = [head, *_reset_guard(data, inner), "}"]
    return [indent + line for line in lines]


def _open(data: MenuInput) -> tuple[str, ...]:
    """An ordinary entry with a GRUB password configured: anybody may boot it."""
    return ("--unrestricted",) if data.protection is not None else ()


def _reset_guard(data: MenuInput, inner: list[str]) -> list[str]:
    """While a factory reset is under way (RESET_VAR in grubenv), an entry starts the agent to carry it on,
    with the environment GRUB chose as the default (the reset makes its new one the default early)."""
    resume = [
        "\t\techo " + word("bootagent: a factory reset is under way (", RESET, "): carrying it on"),
        *("\t" + line for line in _boot_lines(data, BE, recovery=True, mode="reset:resume")),
    ]
    return [f"\tif [ -n {word(RESET)} ]; then", *resume, "\telse", *("\t" + x for x in inner), "\tfi"]


def _kernel_args(data: MenuInput, env: str | Var, mode: str | None) -> list[str]:
    s = data.settings
    args = [word("root=ZFS=", Var("bootagent_pool"), f"/{data.root}/", env)]
    if data.counting.panic:  # before the administrator's arguments: a panic= of theirs wins
        args.append(f"panic={data.counting.panic}")
    args += [quote(a) for a in s.cmdline_linux]
    if mode is not None and mode.startswith("reset:"):
        args += ["bootagent=reset", f"bootagent.reset={mode.removeprefix('reset:')}"]
    elif mode == "recover":  # the failed attempts GRUB counted, for the agent to say and decide by
        args += [f"bootagent={mode}", word("bootagent.failed=", Var("bootagent_failed"))]
    elif mode == "menu":  # the menu shows the counter
        args += [
            f"bootagent={mode}",
            word("bootagent.failed=", counting.TRIES),
            f"bootagent.limit={data.counting.limit}",
        ]
    else:
        args += [f"bootagent={mode}"] if mode else [quote(a) for a in s.cmdline_linux_default]
    return args


def _boot_lines(data: MenuInput, env: str | Var, *, recovery: bool, mode: str = "menu") -> list[str]:
    """`linux` and `initrd` (one level of indentation): plain, or with the agent's image and `mode`."""
    kernel = _boot_path(data, env, "vmlinuz")
    initrd = _boot_path(data, env, "initrd.img")
    agent = _boot_path(data, env, AGENT_IMAGE)
    lines = ["\t" + command("linux", kernel, *_kernel_args(data, env, mode if recovery else None))]
    if recovery:
        lines += [
            f"\tif [ -s {agent} ]; then",
            f"\t\tinitrd {initrd} {agent}",
            "\telse",
            "\t\techo "
            + word(
                "bootagent: ",
                env,
                f" has no /boot/{AGENT_IMAGE} (run bootagent-mkinitrd in it); booting on without the menu",
            ),
            f"\t\tinitrd {initrd}",
            "\tfi",
        ]
    else:
        lines.append(f"\tinitrd {initrd}")
    return lines


def _default_entry(data: MenuInput, title: str) -> list[str]:
    """The entry GRUB boots by itself: it counts the attempt first (one save_env, before the kernel)."""
    env = word(Var("bootagent_env"))
    head = command("menuentry", title, *ENTRY_CLASSES, *_open(data), "--id", quote(DEFAULT_ID), "{")
    lines = [head, f"\tset bootagent_failed={word(counting.TRIES)}"]
    lines += counting.step("\t")
    lines += [
        "\tset bootagent_once=",
        f"\tif [ -s {env} ]; then",
        f"\t\tsave_env -f {env} bootagent_once {TRIES_VAR}",
        "\tfi",
        f"\tif [ {word(counting.RECOVER)} = 1 ]; then",
        "\t\techo "
        + word(
            "bootagent: attempt ",
            counting.TRIES,
            ": unattended recovery of ",
            Var("bootagent_pool"),
            f"/{data.root}/",
            BE,
        ),
        *("\t" + line for line in _boot_lines(data, BE, recovery=True, mode="recover")),
        "\telse",
        "\t\techo "
        + word(
            "bootagent: loading ",
            Var("bootagent_pool"),
            f"/{data.root}/",
            BE,
            " (attempt ",
            counting.TRIES,
            ")",
        ),
        *("\t" + line for line in _boot_lines(data, BE, recovery=False)),
        "\tfi",
    ]
    # counted before anything else (a reset that kills the kernel is an attempt too); then the reset guard
    cut = next(i for i, line in enumerate(lines) if "save_env" in line) + 2  # after the save_env block
    return [*lines[:cut], *_reset_guard(data, lines[cut:]), "}"]


def _reset_entry(data: MenuInput, mode: str, os_name: str) -> list[str]:
    """A factory reset: the agent opens on its confirmation (a typed word); behind GRUB's password when one
    is configured (no --unrestricted)."""
    head = command(
        "menuentry",
        word(f"{os_name}, {RESET_TITLES[mode]}"),
        *ENTRY_CLASSES,
        "--id",
        quote(RESET_IDS[mode]),
        "{",
    )
    agent = _boot_path(data, BE, AGENT_IMAGE)
    return [
        head,
        f"\tif [ -s {agent} ]; then",
        "\t\techo " + word(f"bootagent: {RESET_TITLES[mode]}: starting the agent (it asks first)"),
        *("\t" + line for line in _boot_lines(data, BE, recovery=True, mode=f"reset:{mode}")),
        "\telse",
        "\t\techo " + word("bootagent: ", BE, f" has no /boot/{AGENT_IMAGE}: no factory reset from here"),
        "\t\tsleep 10",
        "\tfi",
        "}",
    ]


def render(menu: Menu) -> str:
    """The grub.cfg fragment; empty when the menu is not usable."""
    data = menu.input
    if data is None or not menu.usable:
        return ""
    os_name = data.settings.os_name
    out = _preamble(data)
    out += _default_entry(data, word(f"{os_name}, ", Var("bootagent_title")))
    out += _entry(
        data,
        word(f"{os_name}, bootagent recovery menu (", BE, ")"),
        RECOVERY_ID,
        BE,
        recovery=True,
    )
    per_env: list[str] = []
    indent = "\t" if data.settings.submenu else ""
    for name in menu.environments:
        per_env += _entry(
            data,
            quote(f"{os_name}, boot environment {name}"),
            f"bootagent-be-{name}",
            name,
            recovery=False,
            indent=indent,
        )
    if menu.more:  # the rest is the agent's to list
        title = f"{os_name}, {menu.more} older boot environments: in the bootagent recovery menu"
        per_env += _entry(data, quote(title), MORE_ID, BE, recovery=True, indent=indent)
    if data.settings.submenu and per_env:
        title = quote(f"{os_name}: all boot environments")
        out.append(command("submenu", title, *_open(data), "--id", SUBMENU_ID, "{"))
        out += per_env
        out.append("}")
    else:
        out += per_env
    if data.reset_entries:  # last: out of the way of the ordinary choices
        for mode in RESET_IDS:
            out += _reset_entry(data, mode, os_name)
    return "\n".join(out) + "\n"
