"""How the time to load a configuration grows with the file's size.

    .venv/bin/python benchmarks/config_load.py [--min-kb N] [--max-kb N] [--rounds N] [--loader c|python]

Writes files of doubling size (16 kB to 2 MB by default) in a few shapes, loads each with
`load_config(strict=False)` (the boot path; logging off) and prints the best of N rounds and the ratio to the
previous size: about 2.0 per doubling is linear, about 4.0 quadratic. The shapes:
  - block list: `customer_datasets:` with one valid dataset per line;
  - flow list: the same as one long `[a, b, ...]` line;
  - bad items: a flow list of invalid names (a problem per item);
  - unknown keys: a top-level mapping of unknown keys (a problem per key);
  - long scalar: one pool name that is one huge line.
Files above the loader's size cap (MAX_BYTES) are refused at once, so the cap is lifted here to time the
parser and the checks themselves; the last line times the refusal of a file above the real cap.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootagent import config


def block_list(size: int) -> str:
    lines = ["customer_datasets:\n"]
    total, i = len(lines[0]), 0
    while total < size:
        lines.append(line := f"  - data/d{i}\n")
        total, i = total + len(line), i + 1
    return "".join(lines)


def flow_items(size: int, item: Callable[[int], str]) -> str:
    parts = ["customer_datasets: ["]
    total, i = len(parts[0]), 0
    while total < size:
        parts.append(part := f"{item(i)}, ")
        total, i = total + len(part), i + 1
    return "".join(parts) + "x]\n"


def unknown_keys(size: int) -> str:
    lines: list[str] = []
    total, i = 0, 0
    while total < size:
        lines.append(line := f"key{i}: {i}\n")
        total, i = total + len(line), i + 1
    return "".join(lines)


SHAPES: dict[str, Callable[[int], str]] = {
    "block list": block_list,
    "flow list": lambda size: flow_items(size, lambda i: f"d{i}"),
    "bad items": lambda size: flow_items(size, lambda i: f"/d{i}"),
    "unknown keys": unknown_keys,
    "long scalar": lambda size: "pool: " + "a" * size + "\n",
}


def best_seconds(path: Path, rounds: int) -> tuple[float, int]:
    """The fastest of `rounds` loads, and the number of problems found."""
    best, problems = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        loaded = config.load_config(path, strict=False)
        best = min(best, time.perf_counter() - started)
        problems = len(loaded.problems)
    return best, problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-kb", type=int, default=16, help="the smallest file, in kB (default 16)")
    parser.add_argument("--max-kb", type=int, default=2048, help="the largest file, in kB (default 2048)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="loads of each file; the best counts (default 3)"
    )
    parser.add_argument(
        "--loader", choices=("c", "python"), default="c", help="PyYAML's C (libyaml) or pure-Python parser"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="skip the bigger files of a shape once one load takes longer",
    )
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    if args.loader == "python":
        config._Loader = yaml.SafeLoader
    elif not hasattr(yaml, "CSafeLoader"):
        parser.error("this PyYAML has no libyaml (C) loader")
    real_cap = config.MAX_BYTES
    sizes = []
    size = args.min_kb * 1000
    while size <= args.max_kb * 1000:
        sizes.append(size)
        size *= 2
    config.MAX_BYTES = 2 * sizes[-1]  # time the parsing and the checks, not the refusal
    print(f"loader: {config._Loader.__name__}; best of {args.rounds}; ratio = time / time at half the size")
    print(f"{'shape':<14}{'size':>10}{'seconds':>11}{'ratio':>8}{'problems':>10}")
    with tempfile.TemporaryDirectory(prefix="bootagent-bench-") as tmp:
        path = Path(tmp) / "bootagent.yaml"
        for name, make in SHAPES.items():
            previous: float | None = None
            for size in sizes:
                path.write_text(make(size), encoding="utf-8")
                if previous is not None and previous > args.budget:
                    print(f"{name:<14}{path.stat().st_size / 1e3:>8.0f}kB{'skipped':>11}")
                    continue
                seconds, problems = best_seconds(path, args.rounds)
                ratio = f"{seconds / previous:.2f}" if previous else ""
                print(
                    f"{name:<14}{path.stat().st_size / 1e3:>8.0f}kB{seconds:>11.4f}{ratio:>8}{problems:>10}"
                )
                previous = seconds
        config.MAX_BYTES = real_cap
        path.write_text(block_list(4 * real_cap), encoding="utf-8")
        seconds, problems = best_seconds(path, args.rounds)
        print(
            f"refusing a {path.stat().st_size / 1e6:.1f} MB file (the cap is {real_cap / 1024:.0f} KiB): "
            f"{seconds:.4f} s, {problems} problem"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
