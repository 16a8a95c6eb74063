"""Tests for bootagent.config: real files under tmp_path, exact problem texts and positions."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootagent.config import (
    DEFAULT_PATH,
    ENV_VAR,
    Apt,
    Config,
    Console,
    FallbackAction,
    Journal,
    LastResort,
    Layout,
    LoadedConfig,
    Protection,
    Recovery,
    Reset,
    Retention,
    Tristate,
    load_config,
)
from bootagent.errors import ConfigError, ConfigProblem, ExitCode, InvalidNameError
from bootagent.model import CreatedBy


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def write(tmp_path: Path, text: str | bytes, name: str = "bootagent.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def lenient(path: Path) -> LoadedConfig:
    return load_config(path, strict=False)


def problems_of(tmp_path: Path, text: str | bytes) -> list[str]:
    """The problems of a file, as 'line:column: message' (the file name removed)."""
    path = write(tmp_path, text)
    loaded = lenient(path)
    return [str(problem).removeprefix(f"{path}:") for problem in loaded.problems]


def one_problem(tmp_path: Path, text: str | bytes) -> str:
    found = problems_of(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


LOADERS = [
    pytest.param(
        getattr(yaml, "CSafeLoader", None),
        id="c",
        marks=pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml"),
    ),
    pytest.param(yaml.SafeLoader, id="python"),
]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with PyYAML's C parser (libyaml) and with its pure-Python one."""
    monkeypatch.setattr("bootagent.config._Loader", request.param)
    return str(request.node.callspec.id)


# ----------------------------------------------------------------------------------------------- defaults


def test_config_defaults_equal_the_schema() -> None:
    config = Config()
    assert config.pool is None
    assert config.boot_pool == "auto"
    assert config.layout == Layout("ROOT", "FACTORY", "factory", ("config",), "bootagent", "BOOT")
    assert config.customer_datasets == ()
    assert config.grubenv == "/boot/grub/grubenv"
    assert config.retention == Retention(10, 90, 10, 1, (CreatedBy.AUTOMATIC, CreatedBy.PACKAGE_MANAGER))
    assert config.recovery == Recovery(3, FallbackAction.LAST_KNOWN_GOOD, LastResort.NONE)
    assert config.console == Console(10, Tristate.AUTO, Tristate.AUTO, None, None, True)
    assert config.journal == Journal(5000)
    assert config.source is None


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().pool = "tank"  # type: ignore[misc]


def test_dataset_helpers() -> None:
    config = Config(customer_datasets=("data", "data/db"))
    assert config.root_container("rpool") == "rpool/ROOT"
    assert config.environment_dataset("rpool", "debian-12") == "rpool/ROOT/debian-12"
    assert config.state_dataset("rpool") == "rpool/bootagent"
    assert config.factory_container("rpool") == "rpool/FACTORY"
    assert config.config_dataset_names("rpool") == ("rpool/config",)
    assert config.customer_dataset_names("rpool") == ("rpool/data", "rpool/data/db")


def test_environment_dataset_validates_the_name() -> None:
    with pytest.raises(InvalidNameError, match="contains '/'"):
        Config().environment_dataset("rpool", "a/b")


def test_missing_default_file_gives_defaults_without_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bootagent.config.DEFAULT_PATH", "/nonexistent/bootagent.yaml")
    loaded = load_config(strict=True)
    assert loaded == LoadedConfig(Config(), (), "/nonexistent/bootagent.yaml")


def test_default_path_is_etc() -> None:
    assert DEFAULT_PATH == "/etc/bootagent/bootagent.yaml"


def test_shipped_example_loads_without_problems_and_equals_the_defaults() -> None:
    shipped = resources.files("bootagent") / "data" / "bootagent.yaml"
    with resources.as_file(shipped) as path:
        loaded = load_config(path, strict=True)
    assert loaded.problems == ()
    assert loaded.config.source == str(path)
    assert dataclasses.replace(loaded.config, source=None) == Config()


def test_shipped_example_sets_every_key() -> None:
    """The example sets (and so documents) every key of the schema, and no other."""
    text = (resources.files("bootagent") / "data" / "bootagent.yaml").read_text(encoding="utf-8")
    keys = {
        line.split(":", 1)[0].strip()
        for line in text.splitlines()
        if line and not line.lstrip().startswith("#")
    }
    expected = {f.name for f in dataclasses.fields(Config) if f.name != "source"}
    for section in (Layout, Retention, Recovery, Console, Journal, Reset, Protection, Apt):
        expected |= {f.name for f in dataclasses.fields(section)}
    assert keys == expected


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "\n\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    loaded = load_config(path, strict=True)
    assert loaded.problems == ()
    assert loaded.config == Config(source=str(path))


def test_section_with_every_key_commented_out_means_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "retention:\n  # keep_count: 3\nconsole:\n")
    loaded = load_config(path, strict=True)
    assert loaded.config == Config(source=str(path))


# ------------------------------------------------------------------------------------------ valid values


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
pool: tank
layout:
  root: sys/ROOT
  factory: sys/FACTORY
  factory_snapshot: factory-2026
  config_datasets: [etc, "srv/conf"]
  state_dataset: sys/agent
customer_datasets:
  - data
  - data/db
grubenv: /boot/efi/grubenv
retention:
  keep_count: 1_000
  max_age_days: 0
  min_free_percent: 90
  min_keep: 2
  prune_created_by: [automatic, manual, automatic]
recovery:
  boot_count_limit: 20
  fallback: menu
  last_resort: reset-keep-data
console:
  menu_timeout: 0
  ascii: yes
  color: false
  rows: 24
  columns: 80
  allow_shell: off
journal:
  max_entries: 100
""",
    )
    loaded = load_config(path, strict=True)
    assert loaded.problems == ()
    assert loaded.config == Config(
        pool="tank",
        layout=Layout("sys/ROOT", "sys/FACTORY", "factory-2026", ("etc", "srv/conf"), "sys/agent"),
        customer_datasets=("data", "data/db"),
        grubenv="/boot/efi/grubenv",
        retention=Retention(1000, 0, 90, 2, (CreatedBy.AUTOMATIC, CreatedBy.MANUAL)),
        recovery=Recovery(20, FallbackAction.MENU, LastResort.RESET_KEEP_DATA),
        console=Console(0, Tristate.ON, Tristate.OFF, 24, 80, False),
        journal=Journal(100),
        source=str(path),
    )


def test_pool_auto_means_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "pool: auto\n"), strict=True).config.pool is None


def test_quoted_name_that_looks_like_a_boolean_is_a_name(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, 'pool: "no"\n'), strict=True)
    assert loaded.config.pool == "no"


def test_empty_lists_are_allowed(tmp_path: Path) -> None:
    loaded = load_config(
        write(tmp_path, "layout:\n  config_datasets: []\nretention:\n  prune_created_by: []\n"), strict=True
    )
    assert loaded.config.layout.config_datasets == ()
    assert loaded.config.retention.prune_created_by == ()


# ---------------------------------------------------------------------------------------- type problems


def test_pool_boolean(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "pool: no\n") == (
        '1:7: pool: expected a pool name, got a boolean (write "no" in quotes if you mean the name)'
    )


def test_pool_octal_integer(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "pool: 0755\n") == "1:7: pool: expected a pool name, got an integer (0755)"


def test_dataset_name_that_yaml_reads_as_a_number(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "layout:\n  root: 2024\n") == (
        "2:9: layout.root: expected a dataset name, got an integer "
        '(write "2024" in quotes if you mean the name)'
    )


def test_snapshot_name_that_yaml_reads_as_a_date(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "layout:\n  factory_snapshot: 2026-01-01\n") == (
        "2:21: layout.factory_snapshot: expected a snapshot name, got a date "
        '(write "2026-01-01" in quotes if you mean the name)'
    )


def test_quoted_integer(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "retention:\n  keep_count: '10'\n") == (
        '2:15: retention.keep_count: expected an integer from 1 to 10000, got a quoted string ("10"); '
        "remove the quotes"
    )


def test_float_where_an_integer_is_expected(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "recovery:\n  boot_count_limit: 2.5\n") == (
        "2:21: recovery.boot_count_limit: expected an integer from 1 to 20, got a fractional number (2.5)"
    )


@pytest.mark.parametrize(
    ("written", "notation"),
    [
        ("0755", "an octal number (leading 0)"),
        ("0x10", "a hexadecimal number"),
        ("0b101", "a binary number"),
        ("1:30", "a base-60 number"),
    ],
)
def test_non_decimal_integer(tmp_path: Path, written: str, notation: str) -> None:
    assert one_problem(tmp_path, f"console:\n  menu_timeout: {written}\n") == (
        f"2:17: console.menu_timeout: expected an integer from 0 to 3600, got {written}, "
        f"which YAML reads as {notation}; write it in decimal"
    )


def test_string_where_an_integer_is_expected(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "journal:\n  max_entries: lots\n") == (
        "2:16: journal.max_entries: expected an integer from 100 to 1000000, got a string (lots)"
    )


def test_empty_value(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "grubenv:\n") == (
        "1:9: grubenv: expected an absolute path, got an empty value; remove the key to use the default"
    )


def test_quoted_boolean(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "console:\n  allow_shell: 'true'\n") == (
        '2:16: console.allow_shell: expected true or false, got a quoted string ("true")'
    )


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "journal: 3\n") == (
        "1:10: journal: expected a mapping of settings, got an integer (3)"
    )


def test_scalar_where_a_list_is_expected(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "layout:\n  config_datasets: config\n") == (
        "2:20: layout.config_datasets: expected a list of dataset names, "
        "got a string (config); write [config]"
    )


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "- pool\n- tank\n") == (
        "1:1: expected a mapping of settings (key: value) at the top of the file, got a list"
    )


def test_merge_key(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "layout:\n  <<: {root: X}\n") == (
        "2:3: layout: expected a setting name, got a merge key ('<<')"
    )


# ---------------------------------------------------------------------------------------- value problems


@pytest.mark.parametrize(
    ("key", "line", "low", "high"),
    [
        ("retention.keep_count", "retention:\n  keep_count: {}\n", 1, 10000),
        ("retention.max_age_days", "retention:\n  max_age_days: {}\n", 0, 36500),
        ("retention.min_free_percent", "retention:\n  min_free_percent: {}\n", 0, 90),
        ("retention.min_keep", "retention:\n  min_keep: {}\n", 1, 1000),
        ("recovery.boot_count_limit", "recovery:\n  boot_count_limit: {}\n", 1, 20),
        ("console.menu_timeout", "console:\n  menu_timeout: {}\n", 0, 3600),
        ("journal.max_entries", "journal:\n  max_entries: {}\n", 100, 1000000),
    ],
)
def test_integer_ranges(tmp_path: Path, key: str, line: str, low: int, high: int) -> None:
    column = line.split("\n")[1].index("{}") + 1
    for bad in (low - 1, high + 1):
        assert one_problem(tmp_path, line.format(bad)) == (
            f"2:{column}: {key}: expected an integer from {low} to {high}, got {bad}"
        )
    for good in (low, high):
        assert problems_of(tmp_path, line.format(good)) == []


def test_rows_and_columns_ranges(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "console:\n  rows: 9\n  columns: 1001\n") == [
        "2:9: console.rows: expected 'auto' or an integer from 10 to 500, got 9",
        "3:12: console.columns: expected 'auto' or an integer from 40 to 1000, got 1001",
    ]
    assert problems_of(tmp_path, "console:\n  rows: 500\n  columns: 40\n") == []


def test_enum_value_lists_the_valid_ones(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "recovery:\n  fallback: menue\n  last_resort: reset\n") == [
        "2:13: recovery.fallback: expected last-known-good or menu, got 'menue' (did you mean 'menu'?)",
        "3:16: recovery.last_resort: expected none or reset-keep-data, got 'reset'",
    ]


def test_tristate(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "console:\n  color: sometimes\n") == (
        "2:10: console.color: expected auto, true or false, got 'sometimes'"
    )


def test_prune_created_by_items(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "retention:\n  prune_created_by: [automatic, apt]\n") == (
        "2:33: retention.prune_created_by item: expected manual, package-manager, automatic, agent or "
        "unknown, got 'apt'"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1tank", "a pool name must start with a letter"),
        ("tank/x", "it contains '/'; use ASCII letters, digits and - _ . :"),
        ("mirror1", "names starting with mirror, raidz, draid or spare, and 'log', are reserved by ZFS"),
        ("c0d0", "names like c0... are reserved by ZFS (they look like disk names)"),
    ],
)
def test_invalid_pool_name(tmp_path: Path, value: str, reason: str) -> None:
    assert (
        one_problem(tmp_path, f"pool: '{value}'\n")
        == f"1:7: pool: {value!r} is not a valid pool name: {reason}"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/ROOT", "it must be relative to the pool, without a leading '/'"),
        ("ROOT@snap", "it must name a dataset, not a snapshot (no '@')"),
        ("sys//ROOT", "it contains an empty component ('//')"),
        ("ROOT/", "it must not end with '/'"),
        ("my ROOT", "it contains ' '; use ASCII letters, digits and - _ . :"),
        ("sys/../ROOT", "'.' and '..' are not dataset names"),
    ],
)
def test_invalid_dataset_name(tmp_path: Path, value: str, reason: str) -> None:
    assert one_problem(tmp_path, f"layout:\n  root: '{value}'\n") == (
        f"2:9: layout.root: {value!r} is not a valid dataset name: {reason}"
    )


def test_dataset_name_with_the_pool_prefix(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "customer_datasets: [tank/data]\npool: tank\n") == (
        "1:21: customer_datasets item: 'tank/data' is not a valid dataset name: "
        "it must be relative to the pool: write 'data', without 'tank/'"
    )


def test_invalid_snapshot_name(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "layout:\n  factory_snapshot: a/b\n") == (
        "2:21: layout.factory_snapshot: 'a/b' is not a valid snapshot name: "
        "it must be a snapshot name alone, without '/' or '@'"
    )


def test_grubenv_must_be_absolute(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "grubenv: boot/grub/grubenv\n") == (
        "1:10: grubenv: 'boot/grub/grubenv' is not a valid path: it must be an absolute path"
    )


def test_overlapping_datasets(tmp_path: Path) -> None:
    text = """\
customer_datasets: [data, ROOT/home]
layout:
  config_datasets: [data, bootagent, FACTORY/conf, etc]
  state_dataset: ROOT/agent
"""
    assert problems_of(tmp_path, text) == [
        "1:27: customer_datasets item: 'ROOT/home' overlaps layout.root ('ROOT'), "
        "which bootagent creates and destroys",
        "3:21: layout.config_datasets item: 'data' overlaps customer_datasets; customer data is never reset",
        "3:27: layout.config_datasets item: 'bootagent' overlaps layout.state_dataset ('bootagent'), "
        "which no reset may erase",
        "3:38: layout.config_datasets item: 'FACTORY/conf' overlaps layout.factory ('FACTORY'), "
        "which bootagent creates and destroys",
        "4:18: layout.state_dataset: 'ROOT/agent' overlaps layout.root ('ROOT'); "
        "they must be separate datasets",
    ]


def test_overlapping_layout_falls_back_to_the_default_layout(tmp_path: Path) -> None:
    loaded = lenient(
        write(tmp_path, "layout:\n  root: sys\n  factory: sys/FACTORY\n  config_datasets: [etc]\n")
    )
    assert [str(p).split(": ", 1)[1] for p in loaded.problems] == [
        "layout.factory: 'sys/FACTORY' overlaps layout.root ('sys'); they must be separate datasets"
    ]
    assert loaded.config.layout == Layout(config_datasets=("etc",))


def test_lenient_load_drops_conflicting_list_items(tmp_path: Path) -> None:
    loaded = lenient(
        write(tmp_path, "customer_datasets: [data, ROOT/x]\nlayout:\n  config_datasets: [data, etc]\n")
    )
    assert len(loaded.problems) == 2
    assert loaded.config.customer_datasets == ("data",)
    assert loaded.config.layout.config_datasets == ("etc",)


# ------------------------------------------------------------------------------------------ unknown keys


def test_unknown_key_with_a_close_match(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "retention:\n  keepcount: 3\n") == (
        "2:3: retention.keepcount: unknown key; did you mean 'keep_count'?"
    )


def test_unknown_key_that_belongs_in_a_section(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "menu_timeout: 3\n") == (
        "1:1: menu_timeout: unknown key; did you mean 'console.menu_timeout'?"
    )


def test_unknown_key_without_a_match(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "journal:\n  zzz: 3\n") == (
        "2:3: journal.zzz: unknown key; expected one of max_entries"
    )


# ---------------------------------------------------------------------------------------- duplicate keys


def test_duplicate_key_is_reported_on_the_second_key_and_the_last_value_wins(tmp_path: Path) -> None:
    loaded = lenient(write(tmp_path, "retention:\n  keep_count: 5\n  min_keep: 2\n  keep_count: 7\n"))
    assert [str(p).split(":", 1)[1] for p in loaded.problems] == [
        "4:3: retention.keep_count: duplicate key (already set on line 2); the last one is used"
    ]
    assert loaded.config.retention.keep_count == 7
    assert loaded.config.retention.min_keep == 2


def test_duplicate_section_checks_every_occurrence(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "console:\n  rows: 1\nconsole:\n  columns: 2\n") == [
        "2:9: console.rows: expected 'auto' or an integer from 10 to 500, got 1",
        "3:1: console: duplicate key (already set on line 1); the last one is used",
        "4:12: console.columns: expected 'auto' or an integer from 40 to 1000, got 2",
    ]


# ------------------------------------------------------------------------------ many problems, strictness

MANY = """\
pool: no
layout:
  root: /ROOT
  rootx: 1
retention:
  keep_count: '10'
  max_age_days: 30
recovery:
  fallback: reboot
console:
  menu_timeout: 20
  rows: 5
"""

MANY_PROBLEMS = [
    '1:7: pool: expected a pool name, got a boolean (write "no" in quotes if you mean the name)',
    "3:9: layout.root: '/ROOT' is not a valid dataset name: "
    "it must be relative to the pool, without a leading '/'",
    "4:3: layout.rootx: unknown key; did you mean 'root'?",
    '6:15: retention.keep_count: expected an integer from 1 to 10000, got a quoted string ("10"); '
    "remove the quotes",
    "9:13: recovery.fallback: expected last-known-good or menu, got 'reboot'",
    "12:9: console.rows: expected 'auto' or an integer from 10 to 500, got 5",
]


def test_all_problems_are_reported_at_once_in_file_order(tmp_path: Path) -> None:
    assert problems_of(tmp_path, MANY) == MANY_PROBLEMS


def test_lenient_load_keeps_valid_keys_and_replaces_only_invalid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MANY)
    loaded = lenient(path)
    assert len(loaded.problems) == len(MANY_PROBLEMS)
    assert all(isinstance(problem, ConfigProblem) for problem in loaded.problems)
    assert loaded.config == Config(
        retention=Retention(max_age_days=30),
        console=Console(menu_timeout=20),
        source=str(path),
    )


def test_lenient_load_logs_the_problems_as_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bootagent.config"):
        lenient(write(tmp_path, "pool: no\n"))
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "1:7: pool: expected a pool name" in caplog.records[0].getMessage()


def test_strict_load_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, MANY)
    with pytest.raises(ConfigError) as raised:
        load_config(path, strict=True)
    error = raised.value
    assert error.exit_code == ExitCode.CONFIG
    assert [str(p) for p in error.problems] == [f"{path}:{p}" for p in MANY_PROBLEMS]
    assert str(error) == "\n  ".join(
        ["the configuration has 6 problems:", *(f"{path}:{p}" for p in MANY_PROBLEMS)]
    )


def test_problem_positions_are_one_based(tmp_path: Path) -> None:
    path = write(tmp_path, "pool: no\n")
    (problem,) = lenient(path).problems
    assert (problem.path, problem.line, problem.column) == (str(path), 1, 7)


# ------------------------------------------------------------------------------------- files and syntax


def test_yaml_syntax_error_position(tmp_path: Path) -> None:
    path = write(tmp_path, "pool: tank\nretention:\n  keep_count: 3\n   min_keep: 2\n")
    loaded = lenient(path)
    assert [str(p) for p in loaded.problems] == [
        f"{path}:4:12: YAML syntax error: mapping values are not allowed in this context"
    ]
    (problem,) = loaded.problems
    assert (problem.line, problem.column) == (4, 12)
    assert loaded.config == Config()


def test_yaml_syntax_error_unclosed_flow_list(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "customer_datasets: [data\n") == (
        "2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence on line 1)"
    )


def test_yaml_syntax_error_is_raised_when_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "a: b: c\n")
    with pytest.raises(ConfigError, match=rf"{path}:1:5: YAML syntax error: mapping values are not allowed"):
        load_config(path, strict=True)


def test_several_documents(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "pool: tank\n---\npool: rpool\n") == (
        "2:1: YAML syntax error: expected a single document in the stream, but found another document"
    )


def test_non_utf8_file(tmp_path: Path) -> None:
    assert one_problem(tmp_path, b"pool: tank\ngrubenv: /boot/gr\xfcb\n") == (
        "2:18: the file is not UTF-8 text (byte 0xfc)"
    )


def test_control_character(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "pool: ta\x07nk\n") == (
        "1:9: the file contains a character YAML does not allow (0x7: control characters are not allowed)"
    )


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffpool: tank\n")
    assert load_config(path, strict=True).config.pool == "tank"


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    loaded = lenient(directory)
    assert [str(p) for p in loaded.problems] == [f"{directory}: cannot read the file: Is a directory"]
    assert loaded.config == Config()


def test_missing_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    loaded = lenient(path)
    assert [str(p) for p in loaded.problems] == [
        f"{path}: the configuration file named on the command line does not exist"
    ]
    assert loaded.config == Config()
    assert loaded.path == str(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path, strict=True)


def test_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "pool: tank\n")
    monkeypatch.setenv(ENV_VAR, str(path))
    loaded = load_config(strict=True)
    assert loaded.path == str(path)
    assert loaded.config.pool == "tank"
    assert loaded.config.source == str(path)


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(write(tmp_path, "pool: fromenv\n", "env.yaml")))
    loaded = load_config(write(tmp_path, "pool: fromarg\n", "arg.yaml"), strict=True)
    assert loaded.config.pool == "fromarg"


def test_missing_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "absent.yaml"
    monkeypatch.setenv(ENV_VAR, str(path))
    loaded = load_config(strict=False)
    assert [str(p) for p in loaded.problems] == [
        f"{path}: the configuration file named by $BOOTAGENT_CONFIG does not exist"
    ]


def test_pure_python_loader_reports_the_same_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libyaml (PyYAML's pure-Python loader) the checks and positions are the same."""
    monkeypatch.setattr("bootagent.config._Loader", yaml.SafeLoader)
    assert problems_of(tmp_path, MANY) == MANY_PROBLEMS


def test_grub_update(tmp_path: Path) -> None:
    assert lenient(write(tmp_path, "")).config.grub_update is Tristate.AUTO
    # unquoted off / no / false are YAML booleans, and mean what they say
    assert lenient(write(tmp_path, "grub_update: off\n")).config.grub_update is Tristate.OFF
    assert lenient(write(tmp_path, "grub_update: true\n")).config.grub_update is Tristate.ON
    assert one_problem(tmp_path, "grub_update: sometimes\n") == (
        "1:14: grub_update: expected auto, true or false, got 'sometimes'"
    )


def test_grub_entries(tmp_path: Path) -> None:
    assert lenient(write(tmp_path, "")).config.grub_entries == 20
    assert lenient(write(tmp_path, "grub_entries: 0\n")).config.grub_entries == 0
    assert one_problem(tmp_path, "grub_entries: -1\n") == (
        "1:15: grub_entries: expected an integer from 0 to 10000, got -1"
    )


# ------------------------------------------------------------------------------------------ hostile files


def test_integer_with_thousands_of_digits(tmp_path: Path, loader: str) -> None:
    """Python's int() refuses more than 4300 digits (and is slow well before): judged by the digits."""
    assert one_problem(tmp_path, "retention:\n  keep_count: " + "1" * 5000 + "\n") == (
        "2:15: retention.keep_count: expected an integer from 1 to 10000, got "
        + "1" * 60
        + "... (5000 characters)"
    )
    assert one_problem(tmp_path, "retention:\n  keep_count: -" + "0" * 30 + "\n") == (
        "2:15: retention.keep_count: expected an integer from 1 to 10000, got -"
        + "0" * 30
        + ", which YAML reads as an octal number (leading 0); write it in decimal"
    )


@pytest.mark.parametrize(("written", "value"), [("+10", 10), ("1_000", 1000), ("+1_0", 10), ("1__0_", 10)])
def test_integer_signs_and_underscores(tmp_path: Path, written: str, value: int) -> None:
    path = write(tmp_path, f"retention:\n  keep_count: {written}\n")
    assert load_config(path, strict=True).config.retention.keep_count == value


def test_negative_integer(tmp_path: Path) -> None:
    assert one_problem(tmp_path, "retention:\n  min_keep: -1_0\n") == (
        "2:13: retention.min_keep: expected an integer from 1 to 1000, got -10"
    )


def test_huge_and_special_floats_are_not_integers(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "retention:\n  keep_count: 1.0e+99999\n  min_keep: .inf\n") == [
        "2:15: retention.keep_count: expected an integer from 1 to 10000, "
        "got a fractional number (1.0e+99999)",
        "3:13: retention.min_keep: expected an integer from 1 to 1000, got a fractional number (.inf)",
    ]


@pytest.mark.parametrize(
    ("opening", "closing", "column"),
    # the top-level mapping is level 1, so the 32nd opening is the 33rd level
    [("[", "]", 7 + 31), ("{a: ", "}", 7 + 31 * 4), ("[{a: ", "}]", 7 + 15 * 5 + 1)],
    ids=["lists", "mappings", "both"],
)
def test_deep_nesting_is_a_problem_not_a_crash(
    tmp_path: Path, loader: str, opening: str, closing: str, column: int
) -> None:
    """PyYAML's own composer recurses: tens of thousands of '[' crash the C one, overflow the Python one."""
    levels = 50_000 // len(opening)
    assert one_problem(tmp_path, "pool: " + opening * levels + closing * levels + "\n") == (
        f"1:{column}: nested too deeply (more than 32 levels)"
    )


def test_deep_block_nesting(tmp_path: Path, loader: str) -> None:
    text = "".join(" " * level + f"k{level}:\n" for level in range(40))
    assert one_problem(tmp_path, text) == "33:33: nested too deeply (more than 32 levels)"
    text = "- " * 1000 + "x\n"
    assert one_problem(tmp_path, text) == "1:65: nested too deeply (more than 32 levels)"


def test_nesting_up_to_the_limit_is_only_a_type_problem(tmp_path: Path, loader: str) -> None:
    assert one_problem(tmp_path, "pool: " + "[" * 31 + "]" * 31 + "\n") == (
        "1:7: pool: expected a pool name, got a list"
    )


def test_aliases_are_refused(tmp_path: Path, loader: str) -> None:
    path = write(tmp_path, "layout:\n  root: &r sys\n  factory: *r\n")
    assert [str(p) for p in lenient(path).problems] == [
        f"{path}:3:12: aliases (*r) are not allowed in the configuration; write the value itself"
    ]
    assert lenient(path).config == Config()
    with pytest.raises(ConfigError, match="aliases"):
        load_config(path, strict=True)


def test_alias_bomb_is_refused_at_the_first_alias(tmp_path: Path, loader: str) -> None:
    """The 'billion laughs': ten lines that stand for 10**10 list items to anything that expands them."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    lines.append("customer_datasets: [" + ", ".join(["*a9"] * 10) + "]")
    assert one_problem(tmp_path, "\n".join(lines) + "\n") == (
        "2:10: aliases (*a0) are not allowed in the configuration; write the value itself"
    )


def test_anchors_alone_are_harmless(tmp_path: Path, loader: str) -> None:
    assert load_config(write(tmp_path, "pool: &p tank\n"), strict=True).config.pool == "tank"


def test_tags(tmp_path: Path, loader: str) -> None:
    """Nothing is ever constructed; a foreign tag makes a value of the wrong type, wherever it is."""
    assert problems_of(
        tmp_path,
        "pool: !!python/object/apply:os.system [echo]\n"
        "layout: !!python/object:bootagent.config.Layout {root: sys}\n"
        "!foo grubenv: /x\n"
        "retention:\n  keep_count: !!binary MTA=\n",
    ) == [
        "1:7: pool: expected a pool name, got a list tagged !!python/object/apply:os.system",
        "2:9: layout: expected a mapping of settings, "
        "got a mapping tagged !!python/object:bootagent.config.Layout",
        "3:1: expected a setting name, got a value tagged !foo (grubenv)",
        "5:15: retention.keep_count: expected an integer from 1 to 10000, "
        "got a value tagged !!binary (MTA=)",
    ]
    assert one_problem(tmp_path, "!!python/object:x {pool: tank}\n") == (
        "1:1: expected a mapping of settings (key: value) at the top of the file, "
        "got a mapping tagged !!python/object:x"
    )


def test_yaml_own_tags_are_honoured(tmp_path: Path, loader: str) -> None:
    path = write(tmp_path, "pool: !!str tank\nretention: !!map\n  keep_count: !!int 3\n")
    loaded = load_config(path, strict=True).config
    assert (loaded.pool, loaded.retention.keep_count) == ("tank", 3)


def test_nul_byte(tmp_path: Path, loader: str) -> None:
    assert one_problem(tmp_path, b"pool: ta\x00nk\n").startswith(
        "1:9: the file contains a character YAML does not allow (0x0: "
    )


def test_character_position_counts_characters_not_bytes(tmp_path: Path, loader: str) -> None:
    """libyaml reports the byte offset of a bad character; the column is in characters."""
    assert one_problem(tmp_path, "grubenv: /bööt\x07\n").startswith(
        "1:15: the file contains a character YAML does not allow (0x7: "
    )


def test_non_character(tmp_path: Path, loader: str) -> None:
    assert one_problem(tmp_path, "pool: tank\uffff\n").startswith(
        "1:11: the file contains a character YAML does not allow (0xffff: "
    )


def test_invalid_utf8_after_a_bom(tmp_path: Path) -> None:
    assert one_problem(tmp_path, b"\xef\xbb\xbfpool: \xff\n") == "1:7: the file is not UTF-8 text (byte 0xff)"


def test_encoded_lone_surrogate_is_not_utf8(tmp_path: Path) -> None:
    assert one_problem(tmp_path, b"pool: \xed\xa0\x80\n") == "1:7: the file is not UTF-8 text (byte 0xed)"


def test_escaped_lone_surrogate(tmp_path: Path) -> None:
    """libyaml refuses the escape; PyYAML's Python scanner lets a lone surrogate through into the value,
    and the message must still be printable anywhere (terminals, JSON, the kernel log)."""
    text = 'pool: "\\ud800"\n'
    assert one_problem(tmp_path, text) == (
        "1:10: YAML syntax error: found invalid Unicode character escape code "
        "(while parsing a quoted scalar on line 1)"
    )


def test_escaped_lone_surrogate_with_the_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bootagent.config._Loader", yaml.SafeLoader)
    found = problems_of(tmp_path, 'pool: "\\ud800"\nretention:\n  keep_count: "\\ud800\\x00"\n')
    assert found == [
        "1:7: pool: '\\ud800' is not a valid pool name: "
        "it contains '\\ud800'; use ASCII letters, digits and - _ . :",
        "3:15: retention.keep_count: expected an integer from 1 to 10000, "
        'got a quoted string ("\\ud800\\x00")',
    ]
    for line in found:
        line.encode("utf-8")


def test_long_values_are_cut_short_in_messages(tmp_path: Path) -> None:
    assert problems_of(tmp_path, f"pool: {'p' * 100_000}\nrecovery:\n  fallback: {'x' * 70}\n") == [
        f"1:7: pool: {'p' * 60!r}... (100000 characters) is not a valid pool name: "
        "it is longer than 255 characters",
        f"3:13: recovery.fallback: expected last-known-good or menu, got {'x' * 60!r}... (70 characters)",
    ]


def test_many_bad_characters_are_listed_in_part(tmp_path: Path) -> None:
    name = "".join(chr(0x4E00 + i) for i in range(30))
    assert one_problem(tmp_path, f"layout:\n  root: a{name}\n") == (
        f"2:9: layout.root: {'a' + name!r} is not a valid dataset name: it contains "
        + ", ".join(repr(c) for c in name[:10])
        + " and 20 other characters; use ASCII letters, digits and - _ . :"
    )


def test_did_you_mean_hints_stop_after_a_hundred(tmp_path: Path) -> None:
    """A file of thousands of unknown keys is no configuration with typos: the search is not worth it."""
    text = "".join(f"x{i}: 1\n" for i in range(100)) + "pol: tank\n"
    found = problems_of(tmp_path, text)
    assert len(found) == 101
    assert found[-1] == (
        "101:1: pol: unknown key; expected one of pool, boot_pool, layout, customer_datasets, grubenv, "
        "grub_update, grub_entries, retention, recovery, console, journal, reset, protection, apt"
    )
    assert one_problem(tmp_path, "pol: tank\n") == "1:1: pol: unknown key; did you mean 'pool'?"


def test_lenient_load_logs_at_most_a_hundred_problems(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "".join(f"x{i}: 1\n" for i in range(150)))
    with caplog.at_level(logging.WARNING, logger="bootagent.config"):
        loaded = lenient(path)
    assert len(loaded.problems) == 150
    assert len(caplog.records) == 101
    assert caplog.records[-1].getMessage() == f"50 more configuration problems in {path} (not logged)"


def test_file_larger_than_the_cap(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_datasets:\n" + "  - data\n" * 40_000)
    loaded = lenient(path)
    assert [str(p) for p in loaded.problems] == [
        f"{path}: the file is too big for a configuration (more than 256 KiB); is it the right file?"
    ]
    assert loaded.config == Config()


def test_a_megabyte_list_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the cap lifted, a 1 MB list loads (benchmarks/config_load.py prints how the time grows with the
    size: linearly; it grew with the square when each item was looked up among the items before it)."""
    monkeypatch.setattr("bootagent.config.MAX_BYTES", 2_000_000)
    names = [f"data/d{i}" for i in range(80_000)]
    path = write(tmp_path, "customer_datasets: [" + ", ".join(names) + "]\n")
    assert path.stat().st_size > 1_000_000
    assert load_config(path, strict=True).config.customer_datasets == tuple(names)


def test_device_without_end_is_read_up_to_the_cap(tmp_path: Path) -> None:
    loaded = lenient(Path("/dev/zero"))
    assert [str(p) for p in loaded.problems] == [
        "/dev/zero: the file is too big for a configuration (more than 256 KiB); is it the right file?"
    ]


def test_fifo_without_a_writer_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "bootagent.yaml"
    os.mkfifo(fifo)
    loaded = load_config(fifo, strict=True)
    assert loaded.problems == ()


def test_path_under_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "pool: tank\n") / "child.yaml"
    assert [str(p) for p in lenient(path).problems] == [f"{path}: cannot read the file: Not a directory"]


def test_file_without_read_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root (CI, the boot) every file is readable, so the refusal is what open(2) says for another user."""
    path = write(tmp_path, "pool: tank\n")
    real_open = os.open

    def refusing(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    assert [str(p) for p in lenient(path).problems] == [f"{path}: cannot read the file: Permission denied"]


def test_nul_in_the_file_name() -> None:
    loaded = load_config("/etc/boot\0agent.yaml", strict=False)
    assert [str(p) for p in loaded.problems] == [
        "/etc/boot\0agent.yaml: cannot read the file: its name contains a NUL"
    ]


# ------------------------------------------------------------------------------------- properties

# Pieces of YAML and of this schema, so that random joins reach the checks and not only the parser.
FRAGMENTS = [
    *("pool", "layout", "root", "factory", "factory_snapshot", "config_datasets", "state_dataset"),
    *("customer_datasets", "grubenv", "grub_update", "grub_entries", "retention", "keep_count"),
    *("max_age_days",),
    *("min_free_percent", "min_keep", "prune_created_by", "recovery", "boot_count_limit", "fallback"),
    *("last_resort", "console", "menu_timeout", "ascii", "color", "rows", "columns", "allow_shell"),
    *("journal", "max_entries", "auto", "menu", "reset-keep-data", "automatic", "manual", "tank"),
    *("ROOT", "FACTORY", "bootagent", "data", "sys/ROOT", "/boot/grub/grubenv", "tank/data", "a/../b"),
    *(": ", ":", "\n", "\n  ", "\n    ", "  ", "- ", "-", "[", "]", "{", "}", ", ", "? ", "#", "---\n"),
    *("...\n", "&a ", "*a", "&b ", "*b", "<<: ", "!!python/object:os.system ", "!foo ", "!!str ", "!!map "),
    *("'", '"', "|\n", ">-\n", "\\", "\\u", "\\ud800", "\\x00", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n"),
    *("0", "10", "-1", "+1_0", "0755", "0x1f", "0b11", "1:30", "1" * 30, "1.5", "1e3", ".inf", ".nan"),
    *("~", "null", "yes", "no", "on", "off", "true", "2026-01-01", "=", "\t", "\r", "\r\n", "\ufeff"),
    *("\x00", "\x07", "\x85", "\u2028", "\ufffe", "\U0001f600", "é"),
]

SECTIONS = {
    "layout": Layout,
    "retention": Retention,
    "recovery": Recovery,
    "console": Console,
    "journal": Journal,
}
TOP_KEYS = [f.name for f in dataclasses.fields(Config) if f.name not in ("source", *SECTIONS)]
SECTION_KEYS = [f.name for section in SECTIONS.values() for f in dataclasses.fields(section)]
VALUES = [
    *("tank", "auto", "3", "24", "80", "100", "0", "true", "off", "menu", "last-known-good", "none"),
    *("reset-keep-data", "/boot/grub/grubenv", "sys/ROOT", "FACTORY", "ROOT/x", "[data, etc]", "[]"),
    *("[automatic, manual]", "[package-manager]", "[data/db, data]", "agent", "x", "'10'", "~"),
]
fragment = st.sampled_from(FRAGMENTS) | st.text(max_size=5)
yaml_ish = st.lists(fragment, max_size=40).map("".join)
# sections of `key: value` lines: mostly well-formed, so that the checks see valid values and conflicts too
value = st.sampled_from(VALUES) | st.sampled_from(FRAGMENTS) | st.text(max_size=5)
top = st.tuples(st.sampled_from(TOP_KEYS), value).map(lambda kv: f"{kv[0]}: {kv[1]}\n")


def section_of(name: str) -> st.SearchStrategy[str]:
    keys = [f.name for f in dataclasses.fields(SECTIONS[name])]
    setting = st.tuples(st.sampled_from(keys) | st.sampled_from(SECTION_KEYS), value)
    lines = st.lists(setting.map(lambda kv: f"  {kv[0]}: {kv[1]}\n"), max_size=5)
    return lines.map(lambda chosen: f"{name}:\n" + "".join(chosen))


config_ish = st.lists(top | st.sampled_from(list(SECTIONS)).flatmap(section_of), max_size=8).map("".join)
any_bytes = (
    st.binary(max_size=400)
    | yaml_ish.map(lambda text: text.encode("utf-8", "surrogatepass"))
    | config_ish.map(lambda text: text.encode("utf-8", "surrogatepass"))
)

HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_problems(problems: tuple[ConfigProblem, ...], path: Path) -> None:
    for problem in problems:
        assert problem.path == str(path)
        assert str(problem).startswith(f"{path}:")
        assert problem.line is None or problem.line >= 1
        assert problem.column is None or (problem.line is not None and problem.column >= 1)
        assert problem.message
        assert problem.message.isprintable(), problem.message
        assert len(problem.message) < 1000


def as_yaml(config: Config) -> str:
    """A configuration file that says `config` (None = 'auto'), for the round trip."""

    def plain(value: Any) -> Any:
        if value is None:
            return "auto"
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, tuple):
            return [plain(item) for item in value]
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return value

    document = plain(dataclasses.replace(config, source=None))
    del document["source"]
    return yaml.safe_dump(document)


@HYPOTHESIS
@given(data=any_bytes)
def test_any_bytes_give_problems_or_a_valid_config(tmp_path: Path, loader: str, data: bytes) -> None:
    """Strict: ConfigError or nothing. Lenient: no exception, and a configuration that loads strictly."""
    path = write(tmp_path, data)
    strict_problems: tuple[ConfigProblem, ...] = ()
    try:
        load_config(path, strict=True)
    except ConfigError as err:  # and nothing else
        strict_problems = err.problems
    check_problems(strict_problems, path)
    loaded = lenient(path)
    assert isinstance(loaded.config, Config)
    check_problems(loaded.problems, path)
    assert bool(loaded.problems) == bool(strict_problems)
    again = load_config(write(tmp_path, as_yaml(loaded.config), "again.yaml"), strict=True).config
    assert dataclasses.replace(again, source=None) == dataclasses.replace(loaded.config, source=None)
