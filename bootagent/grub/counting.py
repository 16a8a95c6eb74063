"""Boot counting in GRUB's script language, from the rule in bootagent.recovery.counter.

GRUB has no arithmetic: the counter steps through the values 0..MAX_TRIES by a chain of comparisons, and any
other value (missing, empty, garbled) becomes 1 -- one attempt, never a good boot. The default entry raises it
and clears the one-shot choice in one `save_env`, before `linux` loads the kernel, so a kernel that dies
before the initramfs is counted too. At the limit the default entry starts the agent's unattended recovery
(`bootagent=recover`, with the agent's image) instead of the failing environment; with no agent image the
menu waits for a person instead of booting the failing environment again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootagent.grub.script import Var, quote, word
from bootagent.recovery.counter import MAX_TRIES, TRIES_VAR

TRIES = Var(TRIES_VAR)
RECOVER = Var("bootagent_recover")


@dataclass(frozen=True)
class Counting:
    limit: int = 3  # failed attempts in a row before the unattended recovery
    panic: int = 10  # panic=N on the kernel command line (0: none)

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_TRIES:
            raise ValueError(f"the boot count limit must be 1..{MAX_TRIES}")


def limit_regexp(limit: int) -> str:
    """Matches exactly the counter values at or above the limit."""
    return "^(" + "|".join(str(n) for n in range(limit, MAX_TRIES + 1)) + ")$"


def decide(counting: Counting, indent: str = "") -> list[str]:
    """In the preamble, before the menu: is this boot the unattended recovery?"""
    return [
        f"{indent}set bootagent_recover=",
        f"{indent}if regexp {quote(limit_regexp(counting.limit))} {word(TRIES)}; then",
        f"{indent}\tset bootagent_recover=1",
        f"{indent}fi",
    ]


def step(indent: str = "") -> list[str]:
    """Raise the counter by one (stopping at MAX_TRIES); anything unknown becomes 1."""
    lines = [f"{indent}if [ {word(TRIES)} = 0 ]; then", f"{indent}\tset {TRIES_VAR}=1"]
    for n in range(1, MAX_TRIES):
        lines += [f"{indent}elif [ {word(TRIES)} = {n} ]; then", f"{indent}\tset {TRIES_VAR}={n + 1}"]
    lines += [
        f"{indent}elif [ {word(TRIES)} = {MAX_TRIES} ]; then",
        f"{indent}\tset {TRIES_VAR}={MAX_TRIES}",
        f"{indent}else",
        f"{indent}\tset {TRIES_VAR}=1",
        f"{indent}fi",
    ]
    return lines
