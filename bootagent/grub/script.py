"""GRUB script, written safely: every value placed in grub.cfg goes through `quote` (or `word`).

GRUB's lexer (grub-core/script/yylex.l) treats `{ } | & $ ; < >`, white space, quotes and the backslash as
special outside quotes (parentheses are not: `(hd0,gpt2)/vmlinuz` is one plain word), and nothing but the
closing quote as special inside single quotes; adjacent quoted and unquoted pieces form one word. So a value
is written bare when it consists only of characters that are plain everywhere, and otherwise single-quoted,
each `'` written as `'\\''` -- the same rule as grub-mkconfig_lib's `grub_quote`. A NUL cannot be
represented and is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BARE = re.compile(r"[A-Za-z0-9_./:,=@+%^()-]+")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GrubScriptError(ValueError):
    """A value that no GRUB word can carry (a NUL byte)."""


def quote(value: str) -> str:
    """`value` as one GRUB word that GRUB reads back as exactly `value`."""
    if "\0" in value:
        raise GrubScriptError("a NUL character cannot be written into grub.cfg")
    if _BARE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Var:
    """A reference to a GRUB variable, expanded when GRUB runs the line (`"${name}"`)."""

    name: str

    def __post_init__(self) -> None:
        if not _VAR.fullmatch(self.name):
            raise GrubScriptError(f"not a GRUB variable name: {self.name!r}")


def word(*parts: str | Var) -> str:
    """One GRUB word made of literal text and variable references, e.g.
    word("(", Var("dev"), ")/ROOT/", Var("be"), "@/boot/vmlinuz")."""
    out = []
    for part in parts:
        if isinstance(part, Var):
            out.append('"${' + part.name + '}"')
        elif part:
            out.append(quote(part))
    return "".join(out) or "''"


def command(*words: str) -> str:
    """A command line from words already quoted (by `quote` or `word`)."""
    return " ".join(words)
