"""Shared test set-up: subprocesses are blocked unless a test opts in with @pytest.mark.subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "subprocess: the test may start real processes (blocked by default in unit tests)"
    )


@pytest.fixture(autouse=True)
def _block_subprocesses(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("subprocess") or request.node.get_closest_marker("vm"):
        yield
        return

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        raise AssertionError(
            f"unit test tried to run a subprocess: {args!r}; inject a fake runner or mark the test "
            "@pytest.mark.subprocess"
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    yield
