"""python3 -m testbed build [--no-agent] | image-path"""

from __future__ import annotations

import argparse
import logging
import sys

from testbed.run import CommandError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testbed")
    sub = parser.add_subparsers(dest="verb", required=True)
    build = sub.add_parser("build", help="build (or reuse) the disk image and the agent layer")
    build.add_argument("--no-agent", action="store_true", help="only the image, without the bootagent .deb")
    build.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.verb == "build":
            from testbed.build import build_image

            image = build_image()
            path = image.disk
            if not args.no_agent:
                from testbed.agent import build_agent_layer

                path = build_agent_layer(image).disk
            print(path)
    except CommandError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
