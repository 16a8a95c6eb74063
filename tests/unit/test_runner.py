"""The one command runner."""

from __future__ import annotations

import pytest

from bootagent.errors import CommandError
from bootagent.runner import run

pytestmark = pytest.mark.subprocess


def test_runs_with_lc_all_c_and_no_stdin() -> None:
    result = run(["sh", "-c", 'echo "$LC_ALL"; cat; echo done'])
    assert result.stdout == "C\ndone\n"
    assert result.returncode == 0


def test_input_is_passed() -> None:
    assert run(["cat"], input="hello").stdout == "hello"


def test_failure_carries_argv_code_and_stderr() -> None:
    with pytest.raises(CommandError) as exc:
        run(["sh", "-c", "echo oops >&2; exit 3"])
    assert exc.value.argv == ("sh", "-c", "echo oops >&2; exit 3")
    assert exc.value.returncode == 3
    assert exc.value.message == "sh failed: oops"


def test_check_false_returns_the_code() -> None:
    assert run(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_missing_binary_has_a_hint() -> None:
    with pytest.raises(CommandError) as exc:
        run(["definitely-not-a-command-xyz"])
    assert exc.value.message == "definitely-not-a-command-xyz: command not found"
    assert exc.value.hint is not None


def test_timeout() -> None:
    with pytest.raises(CommandError, match="did not finish within 0.2 s"):
        run(["sleep", "5"], timeout=0.2)


def test_subprocesses_are_blocked_without_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import _block_subprocesses  # noqa: F401")
    pytester.makepyfile(
        """
        import subprocess
        def test_blocked():
            subprocess.run(["true"])
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unit test tried to run a subprocess*"])
