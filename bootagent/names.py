"""The one name rule for boot environments and snapshots, and its forms for the other languages.

ZFS itself allows, in a dataset or snapshot name component, ASCII letters, digits, `-`, `_`, `.`, `:` and
the space (`zfs_namecheck.c`, `valid_char`). bootagent accepts that set minus what it cannot carry safely:

- **the space**: a name travels on the kernel command line as `root=ZFS=<pool>/<root>/<name>`, and
  initramfs-tools' `/init` splits `/proc/cmdline` at white space without honouring the kernel's quotes, so a
  name with a space reaches Debian's zfs script cut short -- and that script then boots `bootfs` instead,
  another environment. Such environments are listed, but never booted, activated or changed by name;
- **a leading `-`, `.`, `_` or `:`**: a leading `-` reads as an option to `zfs`, `zpool` and `bootagent`
  itself, a leading `.` is a hidden file in mount paths, and `.`/`..` are refused by ZFS; the first character
  is a letter or a digit;
- **more than 64 characters**: names are kept in GRUB's 1024-byte environment block (beside GRUB's own
  variables and other tools'), in menus and in journal lines; 64 leaves room for all of them.

Everything that must know the rule gets it from here: the Python checks (`name_problem`), the GRUB menu
(`GRUB_REGEXP`, emitted into grub.cfg by bootagent.grub), the initramfs (the agent checks a name before it
hands it to Debian's scripts) and the test bed (which imports this module); no shell script repeats it.
Free text (descriptions) is not a name and has its own rule.
"""

from __future__ import annotations

import re
from typing import Final

from bootagent.errors import InvalidNameError

MAX_NAME: Final = 64
# ZFS's own characters in a name component (besides letters and digits).
ZFS_PUNCTUATION: Final = "-_.: "
# What bootagent accepts: ZFS's set without the space.
PUNCTUATION: Final = "-_.:"
_CLASS: Final = "A-Za-z0-9_.:-"  # the same set as a bracket expression (POSIX ERE and Python re)
_SAFE_RE: Final = re.compile(f"[A-Za-z0-9][{_CLASS}]*")
_ZFS_RE: Final = re.compile(r"[A-Za-z0-9_.: -]+")

# For GRUB's `regexp` command (POSIX extended), in a single-quoted GRUB word.
GRUB_REGEXP: Final = f"^[A-Za-z0-9][{_CLASS}]{{0,{MAX_NAME - 1}}}$"

HINT: Final = (
    "use ASCII letters, digits and - _ . : (starting with a letter or a digit, at most 64 characters); "
    "put free text in --description instead"
)


def shown(text: str) -> str:
    """A name as it can be printed anywhere: quoted, with every byte that is not printable ASCII escaped
    (names from the command line may carry undecodable bytes as surrogates)."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode keeps it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif " " <= ch <= "~" and ch not in "'\\":
            out.append(ch)
        elif ch in "'\\":
            out.append("\\" + ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "'" + "".join(out) + "'"


def zfs_allows(name: str) -> bool:
    """ZFS's own rule for one name component (what `zfs create` and `zfs snapshot` accept)."""
    return bool(_ZFS_RE.fullmatch(name)) and name not in (".", "..") and len(name) < 256


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid environment or snapshot name for bootagent, or None if it is."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is {len(name)} characters long; at most {MAX_NAME} are allowed"
    if _SAFE_RE.fullmatch(name):
        return None
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in PUNCTUATION))})
    if " " in bad:
        others = [c for c in bad if c != " "]
        reason = (
            "it contains a space, which the kernel command line cannot carry to the initramfs "
            "(a boot would reach another environment)"
        )
        if others:
            reason += "; and " + ", ".join(shown(c) for c in others)
        return reason
    if bad:
        which = ", ".join(shown(c) for c in bad)
        extra = "" if all(c in ZFS_PUNCTUATION for c in bad) else " (ZFS itself does not allow it)"
        return f"it contains {which}{extra}"
    return f"it starts with {shown(name[0])}; a name starts with a letter or a digit"


def validate_name(name: str, *, what: str = "name") -> str:
    """Return `name` if it is a valid environment or snapshot name, else raise InvalidNameError."""
    problem = name_problem(name)
    if problem is not None:
        hint = "give a name such as 'pre-upgrade-2026-11'" if not name else HINT
        label = f"the {what}" if not name else f"the {what} {shown(name)}"
        raise InvalidNameError(f"{label} is not valid: {problem}", hint=hint)
    return name


def split_target(target: str) -> tuple[str, str | None]:
    """Split 'env' or 'env@snap' into its parts, validating both."""
    env, sep, snap = target.partition("@")
    validate_name(env, what="environment name")
    if sep:
        validate_name(snap, what="snapshot name")
        return env, snap
    return env, None
