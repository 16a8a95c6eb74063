"""The attempt counter in grubenv: `bootagent_tries`, the failed or running attempts of the default path
since the last good boot. GRUB raises it before it loads a kernel (bootagent.grub.counting writes that code
from the constants here); the bless unit sets it to 0.

GRUB's script language has no arithmetic, so the counter is a small decimal from 0 to MAX_TRIES and GRUB
steps it with a chain of comparisons. Anything else -- missing, empty, garbled -- is a defined state: it
counts as one attempt already made, never as a good boot.
"""

from __future__ import annotations

from dataclasses import dataclass

TRIES_VAR = "bootagent_tries"
MAX_TRIES = 20  # the highest recovery.boot_count_limit; GRUB stops counting there


def parse_tries(value: str | None) -> int | None:
    """The counter, or None when it is missing or not one of the values GRUB writes."""
    if value is None or value not in VALUES:
        return None
    return int(value)


VALUES = frozenset(str(n) for n in range(MAX_TRIES + 1))


def next_tries(value: str | None) -> int:
    """What GRUB makes of the counter when it starts an attempt (the same rule as the generated code)."""
    tries = parse_tries(value)
    if tries is None:
        return 1
    return min(tries + 1, MAX_TRIES)


def at_limit(value: str | None, limit: int) -> bool:
    """GRUB starts the unattended recovery instead of the default when the counter is at the limit."""
    tries = parse_tries(value)
    return tries is not None and tries >= limit


@dataclass(frozen=True)
class BootCount:
    """The counter as the running system sees it (after GRUB raised it for this boot)."""

    value: str | None  # the raw grubenv value
    limit: int

    @property
    def tries(self) -> int | None:
        return parse_tries(self.value)

    @property
    def valid(self) -> bool:
        return self.tries is not None

    def describe(self) -> str:
        if self.tries is None:
            shown = "missing" if self.value is None else f"not a count ({self.value[:20]!r})"
            return f"the boot counter is {shown}: this boot counts as an attempt"
        if self.tries == 0:
            return f"no failed attempt since the last good boot (limit {self.limit})"
        return f"attempt {self.tries} of {self.limit} since the last good boot"
