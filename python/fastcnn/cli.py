"""The ``fastcnn`` command line: ``fastcnn info`` prints the runtime configuration."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from fastcnn._config import show_config

    show_config()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fastcnn import __version__

    parser = argparse.ArgumentParser(
        prog="fastcnn", description="Fast CPU building blocks for convolutional neural networks."
    )
    parser.add_argument("--version", action="version", version=f"fastcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    info = sub.add_parser("info", help="show version, threads, CPU features and the kernel ISA")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
