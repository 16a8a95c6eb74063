"""The two reset modes: a module of its own, so that what only reads a reset's request or flag (every boot's
boot-start and bless) does not import the planner."""

from __future__ import annotations

from enum import StrEnum


class ResetMode(StrEnum):
    KEEP_DATA = "keep-data"  # the customer's data stays, untouched
    ERASE_ALL = "erase-all"  # everything but the baselines and the agent's state
