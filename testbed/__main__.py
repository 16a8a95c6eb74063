"""python3 -m testbed build [--no-agent] | image-path"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from testbed.run import CommandError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testbed")
    sub = parser.add_subparsers(dest="verb", required=True)
    build = sub.add_parser("build", help="build (or reuse) the disk image and the agent layer")
    build.add_argument("--no-agent", action="store_true", help="only the image, without the bootagent .deb")
    build.add_argument(
        "--prune",
        action="store_true",
        help="then delete cached artifacts that the current build does not use",
    )
    build.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.verb == "build":
            from testbed.build import build_image

            image = build_image()
            path = image.disk
            keep = set(image.artifacts)
            if not args.no_agent:
                from testbed.agent import build_agent_layer
                from testbed.booted import build_booted

                layer = build_agent_layer(image)
                path = layer.disk
                keep.add(layer.artifact.path)
                keep.add(build_booted(layer).artifact.path)
            if args.prune:
                prune(keep)
            print(path)
    except CommandError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 1
    return 0


def prune(keep: set[Path]) -> None:
    from testbed.cache import cache_dir, remove_tree
    from testbed.run import say

    for path in sorted(cache_dir().iterdir()):
        if path.name == "logs" or path.name.startswith(".") or path in keep or not path.is_dir():
            continue
        say(f"prune: removing {path}")
        remove_tree(path)


if __name__ == "__main__":
    raise SystemExit(main())
