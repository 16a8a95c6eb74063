"""The pool layout the test bed builds: the one the package's own default config describes.

Read from bootagent/data/bootagent.yaml (the file the package installs as /etc/bootagent/bootagent.yaml)
with bootagent's own loader, so the test bed never repeats a layout name the product works out itself."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from bootagent.config import Layout, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "bootagent" / "data" / "bootagent.yaml"
POOL = "rpool"  # the test bed's pool name (the default config finds it: `pool: auto`)


@cache
def default_layout() -> Layout:
    return load_config(DEFAULT_CONFIG, strict=True).config.layout


def be_dataset(name: str, pool: str = POOL) -> str:
    """The dataset of a boot environment in the test bed's pool."""
    return f"{pool}/{default_layout().root}/{name}"
