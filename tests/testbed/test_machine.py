"""The scenario guests' vCPUs: what scripts/test hands over in BOOTAGENT_VM_CPUS."""

from __future__ import annotations

import pytest

from testbed.machine import BUILD_CPUS, MachineError, scenario_cpus


def test_scenario_guests_take_the_number_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTAGENT_VM_CPUS", "1")
    assert scenario_cpus() == 1
    monkeypatch.setenv("BOOTAGENT_VM_CPUS", "4")
    assert scenario_cpus() == 4


def test_without_a_number_scenario_guests_have_the_build_guests_vcpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BOOTAGENT_VM_CPUS", raising=False)
    assert scenario_cpus() == BUILD_CPUS
    monkeypatch.setenv("BOOTAGENT_VM_CPUS", "")
    assert scenario_cpus() == BUILD_CPUS


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_number_is_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BOOTAGENT_VM_CPUS", value)
    with pytest.raises(MachineError, match="BOOTAGENT_VM_CPUS"):
        scenario_cpus()
