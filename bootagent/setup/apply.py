"""Carrying out a `bootagent setup` proposal: the config file edited in place (comments kept, validated
before it replaces the old one, atomically), the state dataset, the grubenv file, GRUB's menu. Each step
says what it changed; a proposal that changes nothing changes nothing (running setup twice is a no-op)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bootagent.config import load_config
from bootagent.errors import BootagentError, ConfigError, RefusedError
from bootagent.fsutil import atomic_write
from bootagent.runner import Runner
from bootagent.setup.inspect import STATE_MOUNTPOINT, Proposal, Setting
from bootagent.zfs.interface import ZfsBackend


def _set_value(line: str, value: str) -> str:
    """`key: old  # note` -> `key: value  # note` (the indentation and an inline comment kept)."""
    match = re.match(r"^(\s*[^:#\s]+\s*:\s*)([^#]*?)(\s+#.*)?$", line)
    if match is None:
        return line
    return match.group(1) + value + (match.group(3) or "")


def edit_config(text: str, settings: Sequence[Setting]) -> str:
    """`text` with each setting's value replaced where the key is (top level, or in its section), or added.
    Comments, indentation and line ends stay as they are, and with nothing to set the text is returned as
    it is: the file is dpkg's conffile, and an edit it did not need would make the next upgrade ask."""
    if not settings:
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    for setting in settings:
        section, _, key = setting.key.rpartition(".")
        if not section:
            at = next((i for i, line in enumerate(lines) if re.match(rf"{re.escape(key)}\s*:", line)), None)
            if at is None:
                lines += ["", f"# {setting.why}", f"{key}: {setting.value}"]
            else:
                lines[at] = _set_value(lines[at], setting.value)
            continue
        head = next(
            (i for i, line in enumerate(lines) if re.match(rf"{re.escape(section)}\s*:\s*(#.*)?$", line)),
            None,
        )
        if head is None:
            lines += ["", f"{section}:", f"  {key}: {setting.value}"]
            continue
        end = next(
            (i for i in range(head + 1, len(lines)) if re.match(r"[^\s#]", lines[i])),
            len(lines),
        )
        keys = [i for i in range(head + 1, end) if re.match(r"\s+[^\s#]", lines[i])]
        indent = re.match(r"\s+", lines[keys[0]]).group(0) if keys else "  "  # type: ignore[union-attr]
        at = next((i for i in keys if re.match(rf"\s+{re.escape(key)}\s*:", lines[i])), None)
        if at is None:
            lines.insert(head + 1, f"{indent}{key}: {setting.value}")
        else:
            lines[at] = _set_value(lines[at], setting.value)
    out = newline.join(lines)
    return out + newline if text.endswith(("\n", "\r")) or not text else out


def write_config(path: Path, text: str) -> None:
    """Validate the new text with the strict loader, then replace the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".check", delete=False) as fh:
        fh.write(text)
        check = Path(fh.name)
    try:
        load_config(check, strict=True)
    except ConfigError as exc:
        raise RefusedError(
            f"the edited configuration would not be valid, so {path} is left as it is: {exc.message}",
            hint="fix the file by hand and run 'bootagent setup' again",
        ) from None
    finally:
        check.unlink(missing_ok=True)
    atomic_write(path, text.encode(), mode=0o644)


def apply(
    proposal: Proposal, *, config_path: Path, zfs: ZfsBackend, runner: Runner, update_grub: bool = True
) -> list[str]:
    """Carry the proposal out; returns what changed, one line each."""
    if proposal.refusals:
        raise RefusedError("; ".join(proposal.refusals), hint="nothing was changed")
    done: list[str] = []
    try:
        _apply(proposal, config_path, zfs, runner, update_grub, done)
    except BootagentError as exc:
        if not done:
            raise
        changed = "; ".join(done)
        raise BootagentError(f"{exc.message} (already changed: {changed})", hint=exc.hint) from exc
    return done


def _apply(
    proposal: Proposal, config_path: Path, zfs: ZfsBackend, runner: Runner, update_grub: bool, done: list[str]
) -> None:
    old = config_path.read_text() if config_path.exists() else ""
    new = edit_config(old, proposal.settings)
    if new != old:
        write_config(config_path, new)
        done.append(f"wrote {config_path} ({', '.join(s.key for s in proposal.settings)})")
    if proposal.state_dataset:
        zfs.create(proposal.state_dataset, {"mountpoint": STATE_MOUNTPOINT})
        done.append(f"created {proposal.state_dataset} at {STATE_MOUNTPOINT}")
    if proposal.grubenv_missing and proposal.grubenv:
        runner(["grub-editenv", proposal.grubenv, "create"], timeout=60)
        done.append(f"created GRUB's environment block {proposal.grubenv}")
    if {"grubenv", "boot_pool"} & {s.key for s in proposal.settings}:
        # the agent's image carries where grubenv is and which pool is the boot pool
        runner(["bootagent-mkinitrd"], timeout=900)
        done.append("rebuilt the agent's image (bootagent-mkinitrd)")
    if done and update_grub:
        runner(["update-grub"], timeout=600)
        done.append("regenerated GRUB's menu (update-grub)")
