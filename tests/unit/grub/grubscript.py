"""A reference reader for the part of GRUB script the menu uses, after grub-core/script/yylex.l: how GRUB
splits a line into words (quotes, backslashes, variables), so tests can check what GRUB will see.

Variables are kept as `${name}` markers (they are expanded at boot); everything else is literal text."""

from __future__ import annotations

SPECIAL = set("{}|&$;<> \t\n'\"\\")
SEPARATOR = "\0;"  # a bare `;` (NUL never occurs in a menu, so no word can look like it)


def words(line: str) -> list[str]:
    """The words of one command line, quotes removed, variables as ${name}. Raises ValueError on
    anything the menu must never produce (unterminated quotes, a bare special character)."""
    out: list[str] = []
    i = 0
    current: list[str] | None = None
    while i < len(line):
        ch = line[i]
        if ch in " \t":
            if current is not None:
                out.append("".join(current))
                current = None
            i += 1
            continue
        if current is None:
            current = []
        if ch == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ValueError(f"unterminated single quote in {line!r}")
            current.append(line[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line):
                    current.append(line[i + 1])
                    i += 2
                elif line[i] == "$":
                    i = _variable(line, i, current)
                else:
                    current.append(line[i])
                    i += 1
            if i >= len(line):
                raise ValueError(f"unterminated double quote in {line!r}")
            i += 1
        elif ch == "\\":
            if i + 1 >= len(line):
                raise ValueError("a backslash at the end of the line")
            current.append(line[i + 1])
            i += 2
        elif ch == "$":
            i = _variable(line, i, current)
        elif ch == ";":  # a command separator: a word of its own
            if current:
                out.append("".join(current))
            current = None
            out.append(SEPARATOR)
            i += 1
        elif ch in SPECIAL:
            if ch in "{}" and not current:  # a block's braces are words of their own
                current.append(ch)
                i += 1
                continue
            raise ValueError(f"bare special character {ch!r} in {line!r}")
        else:
            current.append(ch)
            i += 1
    if current is not None:
        out.append("".join(current))
    return out


def _variable(line: str, i: int, current: list[str]) -> int:
    if line[i + 1 : i + 2] == "{":
        end = line.index("}", i)
        current.append("${" + line[i + 2 : end] + "}")
        return end + 1
    j = i + 1
    while j < len(line) and (line[j].isalnum() or line[j] == "_"):
        j += 1
    current.append("${" + line[i + 1 : j] + "}")
    return j
