"""The configuration: read once, at the edge, into frozen dataclasses.

`load_config()` reads /etc/bootagent/bootagent.yaml (or the file named by an argument or by
$BOOTAGENT_CONFIG), validates every key against the schema and collects ALL problems, each with the
file:line:column of the offending node. The CLI loads strictly (any problem raises ConfigError listing
them all); the early-boot agent loads leniently (every invalid value falls back to its default and the
problems are returned to be logged as warnings) -- a bad config never blocks a boot.

Values are judged on the composed YAML nodes (tag and style), not on what PyYAML would construct, so the
YAML 1.1 traps are caught: `pool: no` is a boolean, `0755` is octal, `"10"` is a string, and duplicate keys
(which PyYAML silently collapses) are reported. Nothing is ever constructed: the nodes are composed from
the safe parser's events by `_compose`, without recursion.

Any bytes in the file give problems, never an exception other than ConfigError (strict) and never one at all
(lenient), in time linear in the file's size: the file is read up to MAX_BYTES, nesting is limited to
_MAX_DEPTH levels, aliases are refused (a few lines of them stand for billions of nodes), integers are
judged by their digits before int() sees them, and values are escaped and cut short in messages.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import re
import stat
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, TypeGuard, TypeVar, cast

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from bootagent.errors import ConfigError, ConfigProblem
from bootagent.model import CreatedBy, validate_name
from bootagent.names import PUNCTUATION

LOG = logging.getLogger(__name__)

DEFAULT_PATH: Final = "/etc/bootagent/bootagent.yaml"
ENV_VAR: Final = "BOOTAGENT_CONFIG"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML has libyaml

# The largest file read (a configuration is a few kilobytes; the shipped example is 4 kB). Loading is linear
# in the size anyway; the cap bounds the time and memory a wrong file can cost at boot. Not Final:
# benchmarks/config_load.py lifts it to time bigger files.
MAX_BYTES = 256 * 1024
_MAX_DEPTH: Final = 32  # nesting levels of lists and mappings (the schema needs 3)


# --------------------------------------------------------------------------------------------- the values


class FallbackAction(StrEnum):
    """What automatic recovery does after too many failed boots."""

    LAST_KNOWN_GOOD = "last-known-good"
    MENU = "menu"


class LastResort(StrEnum):
    """What automatic recovery does when no environment boots."""

    NONE = "none"
    RESET_KEEP_DATA = "reset-keep-data"  # never erases customer data


class CheckFailure(StrEnum):
    """What a failed required health check does."""

    REBOOT = "reboot"  # reboot at once: the next attempt (or the recovery ladder) comes sooner
    WAIT = "wait"  # stay up for inspection; the boot is not blessed and counts as failed


BOOT_POOL_AUTO: Final = "auto"
BOOT_POOL_NONE: Final = "none"


class Tristate(StrEnum):
    AUTO = "auto"
    ON = "true"
    OFF = "false"


@dataclass(frozen=True)
class Layout:
    root: str = "ROOT"  # boot environments are <pool>/<root>/<name>
    factory: str = "FACTORY"  # the baselines: <pool>/<factory>/<release>/system@<factory_snapshot>, ...
    factory_snapshot: str = "factory"
    config_datasets: tuple[str, ...] = ("config",)  # returned to @factory by a keep-data reset
    state_dataset: str = "bootagent"  # the agent's persistent state; no reset erases it
    boot_root: str = "BOOT"  # with a boot pool, each environment's /boot is <boot_pool>/<boot_root>/<name>


@dataclass(frozen=True)
class Retention:
    keep_count: int = 10
    max_age_days: int = 90  # 0 = no age limit
    min_free_percent: int = 10
    min_keep: int = 1
    prune_created_by: tuple[CreatedBy, ...] = (CreatedBy.AUTOMATIC, CreatedBy.PACKAGE_MANAGER)


@dataclass(frozen=True)
class Recovery:
    boot_count_limit: int = 3
    fallback: FallbackAction = FallbackAction.LAST_KNOWN_GOOD
    last_resort: LastResort = LastResort.NONE
    older_good: int = 0  # after the last-known-good environment, try this many older good ones
    boot_timeout: int = 900  # seconds from power-on to boot-complete.target before the watchdog resets
    panic_reboot: int = 10  # panic=N on bootagent's kernel command lines: a dead kernel reboots
    required_check_failure: CheckFailure = CheckFailure.REBOOT


@dataclass(frozen=True)
class Console:
    menu_timeout: int = 10  # seconds; 0 = wait forever
    ascii: Tristate = Tristate.AUTO
    color: Tristate = Tristate.AUTO
    rows: int | None = None  # None = auto
    columns: int | None = None  # None = auto
    allow_shell: bool = True


@dataclass(frozen=True)
class Journal:
    max_entries: int = 5000


@dataclass(frozen=True)
class Reset:
    keep_environments: bool = True  # keep-data: the old environments stay (False: they are removed)
    erase_unclassified: bool = False  # erase-all: also destroy datasets that are no known kind


@dataclass(frozen=True)
class Apt:
    checkpoint: bool = True  # a checkpoint of the running environment before each apt run
    stop_on_failure: bool = False  # a checkpoint that fails stops apt (default: a warning, apt goes on)


@dataclass(frozen=True)
class Protection:
    password_pbkdf2: str = ""  # grub.pbkdf2.sha512...; empty: no password
    user: str = "root"  # GRUB's superuser name
    grub: bool = True  # the destructive GRUB entries need the password (GRUB's superusers)
    agent: bool = True  # the agent's resets and shell need it

    @property
    def grub_protected(self) -> bool:
        return bool(self.password_pbkdf2) and self.grub

    @property
    def agent_protected(self) -> bool:
        return bool(self.password_pbkdf2) and self.agent


@dataclass(frozen=True)
class Config:
    pool: str | None = None  # None = auto
    # the pool holding each environment's /boot half (the OpenZFS HOWTO's bpool): BOOT_POOL_AUTO (another
    # imported pool with <pool>/<boot_root>), BOOT_POOL_NONE (/boot is inside each environment) or a name
    boot_pool: str = "auto"
    layout: Layout = field(default_factory=Layout)
    customer_datasets: tuple[str, ...] = ()  # relative to the pool
    grubenv: str = "/boot/grub/grubenv"
    # regenerate grub.cfg with update-grub after environments come or go: auto = when the system has it,
    # true = always (a missing update-grub is a warning), false = never
    grub_update: Tristate = Tristate.AUTO
    # GRUB entries for at most this many environments (the newest, plus the fallback and the last-known-good;
    # the rest are in the agent's menu); 0 = one for every environment
    grub_entries: int = 20
    retention: Retention = field(default_factory=Retention)
    recovery: Recovery = field(default_factory=Recovery)
    console: Console = field(default_factory=Console)
    journal: Journal = field(default_factory=Journal)
    reset: Reset = field(default_factory=Reset)
    protection: Protection = field(default_factory=Protection)
    apt: Apt = field(default_factory=Apt)
    source: str | None = None  # the file this was read from; None = built-in defaults

    def root_container(self, pool: str) -> str:
        """The dataset holding the boot environments: <pool>/<root>."""
        return f"{pool}/{self.layout.root}"

    def environment_dataset(self, pool: str, name: str) -> str:
        """The dataset of boot environment `name` (validated)."""
        validate_name(name, what="environment name")
        return f"{self.root_container(pool)}/{name}"

    def state_dataset(self, pool: str) -> str:
        return f"{pool}/{self.layout.state_dataset}"

    def factory_container(self, pool: str) -> str:
        """Where the factory baselines live: <pool>/<factory>/<release>/... (bootagent.reset.baseline)."""
        return f"{pool}/{self.layout.factory}"

    def config_dataset_names(self, pool: str) -> tuple[str, ...]:
        return tuple(f"{pool}/{name}" for name in self.layout.config_datasets)

    def customer_dataset_names(self, pool: str) -> tuple[str, ...]:
        """The configured customer datasets (those with org.bootagent:customer=on count too)."""
        return tuple(f"{pool}/{name}" for name in self.customer_datasets)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    problems: tuple[ConfigProblem, ...]
    path: str  # the file that was (or would have been) read


# ------------------------------------------------------------------------------------------- name checks

# Dataset and pool names in the config follow bootagent's one name rule for characters (bootagent.names:
# ZFS's own set without the space, which the kernel command line cannot carry).
_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + PUNCTUATION)
_NAME_CHAR_HELP = "use ASCII letters, digits and " + " ".join(PUNCTUATION)
_BAD_CHARS_LISTED: Final = 10
_POOL_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")


def _bad_chars(text: str) -> str | None:
    bad = sorted(set(text) - _NAME_CHARS)
    if not bad:
        return None
    listed = ", ".join(repr(c) for c in bad[:_BAD_CHARS_LISTED])
    if len(bad) > _BAD_CHARS_LISTED:
        listed += f" and {len(bad) - _BAD_CHARS_LISTED} other characters"
    return f"it contains {listed}; {_NAME_CHAR_HELP}"


def pool_name_problem(name: str) -> str | None:
    """Why `name` is not a valid ZFS pool name, or None if it is."""
    if not name:
        return "it is empty"
    if len(name) > 255:
        return "it is longer than 255 characters"
    if (chars := _bad_chars(name)) is not None:
        return chars
    if not name[0].isascii() or not name[0].isalpha():
        return "a pool name must start with a letter"
    if name.startswith(_POOL_RESERVED_PREFIXES) or name == "log":
        return "names starting with mirror, raidz, draid or spare, and 'log', are reserved by ZFS"
    if re.match(r"c[0-9]", name):
        return "names like c0... are reserved by ZFS (they look like disk names)"
    return None


def dataset_name_problem(name: str, *, pool: str | None = None) -> str | None:
    """Why `name` is not a valid dataset name relative to the pool, or None if it is."""
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it must be relative to the pool, without a leading '/'"
    if "@" in name:
        return "it must name a dataset, not a snapshot (no '@')"
    if "//" in name:
        return "it contains an empty component ('//')"
    if name.endswith("/"):
        return "it must not end with '/'"
    if pool is not None and name.startswith(pool + "/"):
        return (
            f"it must be relative to the pool: write {_quoted(name[len(pool) + 1 :])}, without {pool + '/'!r}"
        )
    if (chars := _bad_chars(name.replace("/", ""))) is not None:
        return chars
    if any(part in (".", "..") for part in name.split("/")):
        return "'.' and '..' are not dataset names"
    if len(name) > 200:
        return "it is longer than 200 characters"
    return None


def snapshot_name_problem(name: str) -> str | None:
    """Why `name` is not a valid snapshot name (the part after '@'), or None if it is."""
    if not name:
        return "it is empty"
    if "/" in name or "@" in name:
        return "it must be a snapshot name alone, without '/' or '@'"
    if (chars := _bad_chars(name)) is not None:
        return chars
    if len(name) > 200:
        return "it is longer than 200 characters"
    return None


# ------------------------------------------------------------------------------------------- node checks

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = (_TAG + t for t in ("seq", "map", "merge"))
# the tags a plain scalar may resolve to (besides merge); a key with any other tag was tagged explicitly
_IMPLICIT_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TAG + "timestamp", _TAG + "value"})
_DECIMAL_RE = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_MAX_DIGITS: Final = 18  # more is out of every range; int() is slow on long strings and refuses 4300 digits
_TRUE = frozenset({"yes", "true", "on"})
_SHOWN: Final = 60  # the most characters of a value quoted in a message
_HINTS: Final = 100  # 'did you mean' searches per file
_LOGGED: Final = 100  # problems logged one by one (all are returned)


class _Invalid:
    """The result of a check that failed (the problem is already recorded)."""


INVALID: Final = _Invalid()
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


def _shown(text: str, limit: int = _SHOWN) -> str:
    """`text` as part of a message: characters that are not printable escaped (a message goes to terminals,
    JSON and the kernel log), and cut short when long."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return cut if len(text) <= limit else f"{cut}... ({len(text)} characters)"


def _quoted(text: str) -> str:
    """`text` quoted as repr() quotes it (escaping what is not printable), cut short when long."""
    return repr(text) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}... ({len(text)} characters)"


def _tag_shown(tag: str) -> str:
    return _shown("!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag)


def _is_plain(node: ScalarNode) -> bool:
    return not node.style  # None with the Python loader, "" with the C one


def _is_mapping(node: Node) -> TypeGuard[MappingNode]:
    return isinstance(node, MappingNode) and node.tag == _MAP  # not, say, !!python/object {...}


def _is_list(node: Node) -> TypeGuard[SequenceNode]:
    return isinstance(node, SequenceNode) and node.tag == _SEQ


def _describe(node: Node) -> str:
    """What a node is, for messages: 'a boolean (no)', 'a list', ..."""
    if isinstance(node, CollectionNode):
        what = "a mapping" if isinstance(node, MappingNode) else "a list"
        return what if node.tag in (_MAP, _SEQ) else f"{what} tagged {_tag_shown(node.tag)}"
    assert isinstance(node, ScalarNode)
    value = _shown(node.value)
    if node.style in ("'", '"'):
        return f'a quoted string ("{value}")'
    if node.style in ("|", ">"):
        return "a block of text"
    if node.tag == _NULL:
        return "an empty value" if value in ("", "~") else f"an empty value ({value})"
    kinds = {
        _BOOL: "a boolean",
        _INT: "an integer",
        _FLOAT: "a fractional number",
        _TAG + "timestamp": "a date",
        _STR: "a string",
    }
    kind = kinds.get(node.tag)
    if kind is None:
        return f"a value tagged {_tag_shown(node.tag)} ({value})"
    return f"{kind} ({value})"


def _line_col(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Checker:
    """Walks the composed document, collecting problems and the values that passed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []
        self.pool: str | None = None
        self.nodes: dict[str, Node] = {}  # dotted key -> value node, for the cross-checks
        self.element_nodes: dict[tuple[str, str], Node] = {}  # (dotted key, list item) -> item node
        self.hints_left = _HINTS

    def close_match(self, word: str, possibilities: Sequence[str]) -> str | None:
        """The one of `possibilities` closest to `word`, for a 'did you mean' hint.

        Only the first _HINTS searches are made: a search is the slowest step of a problem, and a file with
        thousands of unknown names is not a configuration with typos.
        """
        if self.hints_left <= 0:
            return None
        self.hints_left -= 1
        close = difflib.get_close_matches(word, possibilities, n=1)
        return close[0] if close else None

    def problem(self, node: Node | None, message: str) -> _Invalid:
        line, column = _line_col(node) if node is not None else (None, None)
        self.problems.append(ConfigProblem(self.path, line, column, message))
        return INVALID

    def wrong_type(self, key: str, node: Node, expected: str, hint_ok: Callable[[str], bool]) -> _Invalid:
        """Report `node` as not being `expected`; suggest quotes when the bare text would have been fine."""
        got = _describe(node)
        if (
            isinstance(node, ScalarNode)
            and _is_plain(node)
            and node.tag not in (_STR, _NULL)
            and hint_ok(node.value)
        ):
            kind = got.split(" (", 1)[0]
            return self.problem(
                node,
                f"{key}: expected {expected}, got {kind} "
                f'(write "{node.value}" in quotes if you mean the name)',
            )
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return self.problem(
                node, f"{key}: expected {expected}, got {got}; remove the key to use the default"
            )
        return self.problem(node, f"{key}: expected {expected}, got {got}")

    # -- scalars

    def string(
        self, key: str, node: Node, expected: str, why_invalid: Callable[[str], str | None], kind: str
    ) -> str | _Invalid:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            return self.wrong_type(key, node, expected, lambda text: why_invalid(text) is None)
        text: str = node.value
        reason = why_invalid(text)
        if reason is not None:
            return self.problem(node, f"{key}: {_quoted(text)} is not a valid {kind}: {reason}")
        return text

    def integer(
        self, key: str, node: Node, low: int, high: int, *, auto: bool = False
    ) -> int | None | _Invalid:
        expected = f"an integer from {low} to {high}"
        if auto:
            expected = f"'auto' or {expected}"
        if auto and isinstance(node, ScalarNode) and node.tag == _STR and node.value == "auto":
            return None
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            got = _describe(node)
            if (
                isinstance(node, ScalarNode)
                and node.style in ("'", '"')
                and _DECIMAL_RE.fullmatch(node.value)
            ):
                got += "; remove the quotes"
            elif isinstance(node, ScalarNode) and node.tag == _NULL:
                got += "; remove the key to use the default"
            return self.problem(node, f"{key}: expected {expected}, got {got}")
        text = node.value
        if not _DECIMAL_RE.fullmatch(text):
            plain = text.lstrip("+-").lower()
            if ":" in plain:
                notation = "a base-60 number"
            elif plain.startswith("0x"):
                notation = "a hexadecimal number"
            elif plain.startswith("0b"):
                notation = "a binary number"
            else:
                notation = "an octal number (leading 0)"
            return self.problem(
                node,
                f"{key}: expected {expected}, got {_shown(text)}, "
                f"which YAML reads as {notation}; write it in decimal",
            )
        if len(text.lstrip("+-").replace("_", "")) > _MAX_DIGITS:
            return self.problem(node, f"{key}: expected {expected}, got {_shown(text)}")
        value = int(text.replace("_", ""), 10)
        if not low <= value <= high:
            return self.problem(node, f"{key}: expected {expected}, got {value}")
        return value

    def boolean(self, key: str, node: Node) -> bool | _Invalid:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            return self.wrong_type(key, node, "true or false", lambda _: False)
        return node.value.lower() in _TRUE

    def choice(self, key: str, node: Node, enum: type[_E]) -> _E | _Invalid:
        valid = [member.value for member in enum]
        expected = f"{', '.join(valid[:-1])} or {valid[-1]}"
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            return self.wrong_type(key, node, expected, lambda _: False)
        if node.value in valid:
            return enum(node.value)
        close = self.close_match(node.value, valid)
        hint = f" (did you mean {close!r}?)" if close else ""
        return self.problem(node, f"{key}: expected {expected}, got {_quoted(node.value)}{hint}")

    def tristate(self, key: str, node: Node) -> Tristate | _Invalid:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return Tristate.ON if node.value.lower() in _TRUE else Tristate.OFF
        return self.choice(key, node, Tristate)

    # -- lists

    def items(self, key: str, node: Node, expected: str, check: Callable[[str, Node], _T | _Invalid]) -> Any:
        """A list whose invalid items are reported and dropped (valid ones are kept); duplicates collapse."""
        if not _is_list(node):
            hint = ""
            if isinstance(node, ScalarNode) and node.tag == _STR and _is_plain(node):
                hint = f"; write [{_shown(node.value)}]"
            if isinstance(node, ScalarNode) and node.tag == _NULL:
                hint = "; write [] for none"
            return self.problem(node, f"{key}: expected a list of {expected}, got {_describe(node)}{hint}")
        result: dict[_T, None] = {}  # a dict, not a list: `in` must not rescan the items so far
        for item in node.value:
            value = check(f"{key} item", item)
            if not isinstance(value, _Invalid) and value not in result:
                result[value] = None
                self.element_nodes[key, str(value)] = item
        return tuple(result)

    def dataset_list(self, key: str, node: Node) -> Any:
        return self.items(key, node, "dataset names", lambda k, n: self.dataset(k, n))

    def dataset(self, key: str, node: Node) -> str | _Invalid:
        return self.string(
            key,
            node,
            "a dataset name",
            lambda text: dataset_name_problem(text, pool=self.pool),
            "dataset name",
        )


# Each key's check: (checker, dotted key, value node) -> the value, or INVALID once reported.
_Check = Callable[[_Checker, str, Node], Any]


def _boot_pool(c: _Checker, key: str, node: Node) -> Any:
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value in (BOOT_POOL_AUTO, BOOT_POOL_NONE):
        return node.value
    return c.string(key, node, "'auto', 'none' or a pool name", pool_name_problem, "pool name")


def _pool(c: _Checker, key: str, node: Node) -> Any:
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value == "auto":
        return None
    return c.string(key, node, "a pool name", pool_name_problem, "pool name")


_SECTIONS: Final[dict[str, tuple[Any, dict[str, _Check]]]] = {
    "layout": (
        Layout,
        {
            "root": _Checker.dataset,
            "boot_root": _Checker.dataset,
            "factory": _Checker.dataset,
            "factory_snapshot": lambda c, k, n: c.string(
                k, n, "a snapshot name", snapshot_name_problem, "snapshot name"
            ),
            "config_datasets": _Checker.dataset_list,
            "state_dataset": _Checker.dataset,
        },
    ),
    "retention": (
        Retention,
        {
            "keep_count": lambda c, k, n: c.integer(k, n, 1, 10000),
            "max_age_days": lambda c, k, n: c.integer(k, n, 0, 36500),
            "min_free_percent": lambda c, k, n: c.integer(k, n, 0, 90),
            "min_keep": lambda c, k, n: c.integer(k, n, 1, 1000),
            "prune_created_by": lambda c, k, n: c.items(
                k,
                n,
                "checkpoint origins (" + ", ".join(CreatedBy) + ")",
                lambda ik, item: c.choice(ik, item, CreatedBy),
            ),
        },
    ),
    "recovery": (
        Recovery,
        {
            "boot_count_limit": lambda c, k, n: c.integer(k, n, 1, 20),
            "fallback": lambda c, k, n: c.choice(k, n, FallbackAction),
            "last_resort": lambda c, k, n: c.choice(k, n, LastResort),
            "older_good": lambda c, k, n: c.integer(k, n, 0, 20),
            "boot_timeout": lambda c, k, n: c.integer(k, n, 0, 86400),
            "panic_reboot": lambda c, k, n: c.integer(k, n, 0, 3600),
            "required_check_failure": lambda c, k, n: c.choice(k, n, CheckFailure),
        },
    ),
    "console": (
        Console,
        {
            "menu_timeout": lambda c, k, n: c.integer(k, n, 0, 3600),
            "ascii": _Checker.tristate,
            "color": _Checker.tristate,
            "rows": lambda c, k, n: c.integer(k, n, 10, 500, auto=True),
            "columns": lambda c, k, n: c.integer(k, n, 40, 1000, auto=True),
            "allow_shell": _Checker.boolean,
        },
    ),
    "journal": (Journal, {"max_entries": lambda c, k, n: c.integer(k, n, 100, 1000000)}),
    "reset": (Reset, {"keep_environments": _Checker.boolean, "erase_unclassified": _Checker.boolean}),
    "protection": (
        Protection,
        {
            "password_pbkdf2": lambda c, k, n: c.string(
                k, n, "a grub-mkpasswd-pbkdf2 hash", lambda t: None if t == "" else _hash_problem(t), "hash"
            ),
            "user": lambda c, k, n: c.string(
                k,
                n,
                "a user name",
                lambda t: None
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,31}", t)
                else "letters, digits, _ -",
                "user name",
            ),
            "grub": _Checker.boolean,
            "agent": _Checker.boolean,
        },
    ),
    "apt": (Apt, {"checkpoint": _Checker.boolean, "stop_on_failure": _Checker.boolean}),
}

_TOP: Final[dict[str, _Check]] = {
    "pool": _pool,
    "boot_pool": _boot_pool,
    "customer_datasets": _Checker.dataset_list,
    "grubenv": lambda c, k, n: c.string(
        k,
        n,
        "an absolute path",
        lambda text: None if text.startswith("/") and "\0" not in text else "it must be an absolute path",
        "path",
    ),
    "grub_update": _Checker.tristate,
    "grub_entries": lambda c, k, n: c.integer(k, n, 0, 10000),
}
_TOP_ORDER: Final = (
    "pool",
    "boot_pool",
    "layout",
    "customer_datasets",
    "grubenv",
    "grub_update",
    "grub_entries",
    "retention",
    "recovery",
    "console",
    "journal",
    "reset",
    "protection",
    "apt",
)
_ALL_KEYS: Final = [*_TOP_ORDER] + [f"{s}.{k}" for s, (_, keys) in _SECTIONS.items() for k in keys]
_KEYS_BY_NAME: Final = {  # 'rows' -> ['console.rows']
    name: [k for k in _ALL_KEYS if k.rsplit(".", 1)[-1] == name]
    for name in {k.rsplit(".", 1)[-1] for k in _ALL_KEYS}
}


def _mapping(c: _Checker, prefix: str, node: MappingNode, known: Sequence[str]) -> dict[str, list[Node]]:
    """The value nodes of each known key of a mapping, in file order; unknown and duplicate keys are reported.

    A duplicate key is a problem even though PyYAML would silently keep the last value; every occurrence is
    still checked, and the last one is used (as PyYAML would).
    """
    values: dict[str, list[Node]] = {}
    first_line: dict[str, int] = {}
    where = f"{prefix}: " if prefix else ""
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag not in _IMPLICIT_TAGS:
            merge = isinstance(key_node, ScalarNode) and key_node.tag == _MERGE
            what = "a merge key ('<<')" if merge else _describe(key_node)
            c.problem(key_node, f"{where}expected a setting name, got {what}")
            continue
        name: str = key_node.value
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in known:
            if close := c.close_match(name, known):
                hint = f"did you mean {close!r}?"
            elif elsewhere := [k for k in _KEYS_BY_NAME.get(name, ()) if k != dotted]:
                hint = f"did you mean {elsewhere[0]!r}?"
            else:
                hint = "expected one of " + ", ".join(known)
            c.problem(key_node, f"{_shown(dotted)}: unknown key; {hint}")
            continue
        if name in first_line:
            c.problem(
                key_node,
                f"{dotted}: duplicate key (already set on line {first_line[name]}); the last one is used",
            )
        else:
            first_line[name] = key_node.start_mark.line + 1
        values.setdefault(name, []).append(value_node)
    return values


def _check_section(c: _Checker, name: str, node: Node) -> Any:
    cls, checks = _SECTIONS[name]
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return cls()  # a section with every key commented out
    if not _is_mapping(node):
        return c.problem(node, f"{name}: expected a mapping of settings, got {_describe(node)}")
    section: dict[str, Any] = {}
    for key, value_nodes in _mapping(c, name, node, list(checks)).items():
        dotted = f"{name}.{key}"
        for value_node in value_nodes:
            c.nodes[dotted] = value_node
            value = checks[key](c, dotted, value_node)
        if not isinstance(value, _Invalid):
            section[key] = value
    return replace(cls(), **section)


def _check_document(c: _Checker, root: Node | None) -> Config:
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
        return Config(source=c.path)  # an empty file
    if not _is_mapping(root):
        c.problem(
            root, f"expected a mapping of settings (key: value) at the top of the file, got {_describe(root)}"
        )
        return Config(source=c.path)
    top = _mapping(c, "", root, _TOP_ORDER)
    changes: dict[str, Any] = {}
    for name in _TOP_ORDER:  # pool first: dataset names are checked against it
        for node in top.get(name, ()):
            c.nodes[name] = node
            value = _TOP[name](c, name, node) if name in _TOP else _check_section(c, name, node)
        if name not in top or isinstance(value, _Invalid):
            continue
        changes[name] = value
        if name == "pool":
            c.pool = value
    return replace(Config(source=c.path), **changes)


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _cross_check(c: _Checker, config: Config, *, strict: bool) -> Config:
    """Check the datasets against each other; in lenient mode, repair what conflicts."""
    layout = config.layout
    containers = {"layout.root": layout.root, "layout.factory": layout.factory}
    special = {**containers, "layout.state_dataset": layout.state_dataset}
    conflict = False
    names = list(special.items())
    for i, (key_a, a) in enumerate(names):
        for key_b, b in names[i + 1 :]:
            if _overlap(a, b):
                conflict = True
                # report it on the later key, unless only the earlier one was written in the file
                (bad_key, bad), (other_key, other) = (
                    ((key_b, b), (key_a, a)) if key_b in c.nodes else ((key_a, a), (key_b, b))
                )
                c.problem(
                    c.nodes.get(bad_key),
                    f"{bad_key}: {bad!r} overlaps {other_key} ({other!r}); they must be separate datasets",
                )
    if conflict and not strict:
        defaults = Layout()
        layout = replace(
            layout, root=defaults.root, factory=defaults.factory, state_dataset=defaults.state_dataset
        )
        containers = {"layout.root": layout.root, "layout.factory": layout.factory}

    customer_datasets = frozenset(config.customer_datasets)

    def clashes(key: str, name: str) -> str | None:
        for other_key, other in containers.items():
            if _overlap(name, other):
                return f"{other_key} ({other!r}), which bootagent creates and destroys"
        if name == layout.state_dataset:
            return f"layout.state_dataset ({name!r}), which no reset may erase"
        if key == "layout.config_datasets" and name in customer_datasets:
            return "customer_datasets; customer data is never reset"
        return None

    def keep(key: str, names: tuple[str, ...]) -> tuple[str, ...]:
        kept = []
        for name in names:
            reason = clashes(key, name)
            if reason is None:
                kept.append(name)
            else:
                c.problem(c.element_nodes.get((key, name)), f"{key} item: {name!r} overlaps {reason}")
        return tuple(kept) if not strict else names

    customers = keep("customer_datasets", config.customer_datasets)
    layout = replace(layout, config_datasets=keep("layout.config_datasets", layout.config_datasets))
    return replace(config, layout=layout, customer_datasets=customers)


# ---------------------------------------------------------------------------------------------- loading


class _Refused(Exception):
    """Valid YAML that the configuration does not accept, found while composing."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


def _mark(mark: object) -> yaml.Mark | None:
    """An event's mark, typed as a node's (the C parser's marks have the same line and column)."""
    return cast("yaml.Mark | None", mark)


def _tag(loader: Any, kind: type[Node], tag: str | None, value: str | None, implicit: Any) -> str:
    """A node's tag: the explicit one, or the one the resolver gives the plain value (YAML 1.1 rules)."""
    if tag is not None and tag != "!":
        return tag
    resolved: str = loader.resolve(kind, value, implicit)
    return resolved


def _compose(text: str) -> Node | None:
    """The document's root node, as `yaml.compose()` would return it, composed from the parser's events.

    PyYAML's own composer recurses once per nesting level: the C one in C (a few ten thousand `[` crash the
    process), the Python one in Python (RecursionError). Here the open collections are a list, and no deeper
    than _MAX_DEPTH. Aliases are refused: they are never needed in this file, and a few lines of them stand
    for billions of nodes to whatever walks the tree. Anchors alone are harmless and ignored.
    """
    loader = _Loader(text)
    try:
        root: Node | None = None
        document: DocumentStartEvent | None = None
        open_nodes: list[CollectionNode] = []
        keys: list[Node | None] = []  # per open collection: a mapping's key waiting for its value
        while loader.check_event():
            event = loader.get_event()
            node: Node
            if isinstance(event, ScalarEvent):
                tag = _tag(loader, ScalarNode, event.tag, event.value, event.implicit)
                start, end = _mark(event.start_mark), _mark(event.end_mark)
                node = ScalarNode(tag, event.value, start, end, style=event.style)
            elif isinstance(event, CollectionStartEvent):
                if len(open_nodes) >= _MAX_DEPTH:
                    raise _Refused(
                        _mark(event.start_mark), f"nested too deeply (more than {_MAX_DEPTH} levels)"
                    )
                kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
                tag = _tag(loader, kind, event.tag, None, event.implicit)
                node = kind(tag, [], _mark(event.start_mark), None, flow_style=event.flow_style)
            elif isinstance(event, CollectionEndEvent):
                open_nodes.pop().end_mark = _mark(event.end_mark)
                keys.pop()
                continue
            elif isinstance(event, AliasEvent):
                raise _Refused(
                    _mark(event.start_mark),
                    f"aliases (*{_shown(event.anchor or '')}) are not allowed in the configuration; "
                    "write the value itself",
                )
            elif isinstance(event, DocumentStartEvent):
                if document is not None:  # the same error as yaml.compose()
                    raise yaml.composer.ComposerError(
                        "expected a single document in the stream",
                        _mark(document.start_mark),
                        "but found another document",
                        _mark(event.start_mark),
                    )
                document = event
                continue
            else:  # the stream's start and end, a document's end
                continue
            if not open_nodes:
                root = node
            elif isinstance(open_nodes[-1], SequenceNode):
                open_nodes[-1].value.append(node)
            elif (key := keys[-1]) is None:
                keys[-1] = node
            else:
                open_nodes[-1].value.append((key, node))
                keys[-1] = None
            if isinstance(node, CollectionNode):
                open_nodes.append(node)
                keys.append(None)
        return root
    finally:
        loader.dispose()


def _reader_error_index(text: str, err: yaml.reader.ReaderError) -> int:
    """The index in `text` of the character a ReaderError is about."""
    c_parser = getattr(getattr(yaml, "cyaml", None), "CParser", None)  # None without libyaml
    if c_parser is not None and issubclass(_Loader, c_parser):  # libyaml counts bytes of the UTF-8 text
        return len(text.encode("utf-8")[: err.position].decode("utf-8", "ignore"))
    return int(err.position)


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _parse(path: str, data: bytes) -> tuple[Node | None, ConfigProblem | None]:
    if len(data) > MAX_BYTES:
        message = f"the file is too big for a configuration (more than {MAX_BYTES // 1024} KiB)"
        return None, ConfigProblem(path, None, None, f"{message}; is it the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        undecoded = err.object  # after the byte-order mark, if there is one
        line = undecoded.count(b"\n", 0, err.start) + 1
        line_start = undecoded.rfind(b"\n", 0, err.start) + 1
        column = len(undecoded[line_start : err.start].decode("utf-8", "replace")) + 1
        byte = undecoded[err.start]
        return None, ConfigProblem(path, line, column, f"the file is not UTF-8 text (byte 0x{byte:02x})")
    try:
        return _compose(text), None
    except _Refused as err:
        if err.mark is None:
            return None, ConfigProblem(path, None, None, err.message)
        return None, ConfigProblem(path, err.mark.line + 1, err.mark.column + 1, err.message)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = f"YAML syntax error: {err.problem or err.context}"
        if err.context and err.problem and err.problem.startswith("but "):
            message = f"YAML syntax error: {err.context}, {err.problem}"
        elif err.context and err.problem and err.context_mark is not None:
            message += f" ({err.context} on line {err.context_mark.line + 1})"
        message = _shown(message, 300)
        if mark is None:
            return None, ConfigProblem(path, None, None, message)
        return None, ConfigProblem(path, mark.line + 1, mark.column + 1, message)
    except yaml.reader.ReaderError as err:
        line, column = _position(text, _reader_error_index(text, err))
        code = err.character if isinstance(err.character, int) else ord(err.character)
        message = f"the file contains a character YAML does not allow ({code:#x}: {err.reason})"
        return None, ConfigProblem(path, line, column, message)
    except yaml.YAMLError as err:  # anything else the parser may raise
        return None, ConfigProblem(path, None, None, _shown(f"YAML error: {err}", 300))


def _read(path: str) -> bytes:
    """The file's bytes, at most MAX_BYTES + 1 of them (so /dev/zero or a runaway log cannot fill memory)."""
    # O_NONBLOCK: opening a FIFO that has no writer must not hang the boot; reads block again below
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with open(fd, "rb") as stream:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        os.set_blocking(fd, True)
        return stream.read(MAX_BYTES + 1)


def load_config(path: str | os.PathLike[str] | None = None, *, strict: bool) -> LoadedConfig:
    """Read and validate the configuration.

    `path` wins over $BOOTAGENT_CONFIG, which wins over /etc/bootagent/bootagent.yaml. A missing default file
    means the defaults; a missing file named explicitly is a problem. With `strict`, any problem raises
    ConfigError listing them all; without it nothing in the file raises: invalid values fall back to their
    defaults and the problems are returned.
    """
    explicit = path is not None or bool(os.environ.get(ENV_VAR))
    chosen = os.fspath(path) if path is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH
    problems: list[ConfigProblem] = []
    config = Config()
    try:
        data = _read(chosen)
    except FileNotFoundError:
        if explicit:
            named = "named by $" + ENV_VAR if path is None else "named on the command line"
            problems.append(
                ConfigProblem(chosen, None, None, f"the configuration file {named} does not exist")
            )
        else:
            LOG.debug("no configuration file at %s; using the defaults", chosen)
    except OSError as err:
        problems.append(ConfigProblem(chosen, None, None, f"cannot read the file: {err.strerror or err}"))
    except ValueError:  # a NUL in the name: no file has it
        problems.append(ConfigProblem(chosen, None, None, "cannot read the file: its name contains a NUL"))
    else:
        root, syntax = _parse(chosen, data)
        if syntax is not None:
            problems.append(syntax)
        else:
            checker = _Checker(chosen)
            config = _cross_check(checker, _check_document(checker, root), strict=strict)
            problems.extend(sorted(checker.problems, key=lambda p: (p.line or 0, p.column or 0)))
    if problems and strict:
        raise ConfigError(problems)
    for problem in problems[:_LOGGED]:  # boot time: the caller need not log them again
        LOG.warning("configuration problem (the default is used instead): %s", problem)
    if len(problems) > _LOGGED:  # the kernel log drops a flood anyway
        LOG.warning("%d more configuration problems in %s (not logged)", len(problems) - _LOGGED, chosen)
    return LoadedConfig(config=config, problems=tuple(problems), path=chosen)


def _hash_problem(text: str) -> str | None:
    """What is wrong with a configured password hash (imported here: only a config that sets one pays)."""
    from bootagent.reset.password import hash_problem

    return hash_problem(text)
