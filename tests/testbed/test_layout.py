"""The test bed builds the layout the package's default config describes, and names it nowhere else."""

from __future__ import annotations

import re

import pytest

from bootagent.config import load_config
from testbed import agent, build, layout


def test_the_layout_is_the_packages_default_config() -> None:
    shipped = load_config(layout.DEFAULT_CONFIG, strict=True).config
    assert layout.default_layout() == shipped.layout
    assert layout.be_dataset("alpha") == f"{layout.POOL}/{shipped.layout.root}/alpha"


@pytest.mark.parametrize("script", ["POOL_JOB", "INSTALL_JOB"])
def test_the_guest_scripts_take_every_layout_name_from_the_config(script: str) -> None:
    text = getattr(build, script, None) or getattr(agent, script)
    names = layout.default_layout()
    # no dataset path spelled out: under the pool, every layout name is a placeholder
    pool = r"(?:@POOL@|rpool|\$pool|\$\{pool\}|\$POOL)"
    for name in (names.root, names.factory, names.state_dataset, *names.config_datasets):
        found = re.findall(rf"{pool}/{re.escape(name)}\b", text)
        assert not found, (script, name, found)
