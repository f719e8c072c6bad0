# PYTHON_ARGCOMPLETE_OK
"""`edge-tl` command line: a package with one module per command group, each handler thin
(parse → library call → print). Errors meant for users (EdgeTLError) print one line and exit 1;
`--debug` shows the traceback. Command modules import their heavy libraries when they run, so
`edge-tl --help` and the runtime commands work on the lean install without torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from edge_tl import __version__
from edge_tl.cli import adapt, bench, evaluate, export, serve, train
from edge_tl.errors import EdgeTLError

__all__ = ["main", "build_parser"]

# in the order `edge-tl --help` lists them
_GROUPS = (train, export, serve, evaluate, adapt, bench)


# older spellings, still accepted, no longer shown: one spelling for one meaning everywhere
# (--out for files and folders written, --precision and --batch-size whether one or a list)
_ALIASES = {
    "train": {"--output": "--out"},
    "bench": {"--precisions": "--precision", "--batch": "--batch-size"},
    "build": {"--batch": "--batch-profile"},
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _complete(parser)
    args = parser.parse_args(_canonical(list(sys.argv[1:] if argv is None else argv)))
    _configure_logging(args)
    try:
        return int(args.handler(args) or 0)
    except EdgeTLError as exc:
        if args.debug:
            raise
        print(f"edge-tl: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only or full output folder: the file and the reason
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edge-tl: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edge-tl: interrupted", file=sys.stderr)
        return 130


def _canonical(argv: list[str]) -> list[str]:
    """`argv` with the command's old flag spellings replaced by today's."""
    command = next((a for a in argv if not a.startswith("-")), None)
    aliases = _ALIASES.get(command or "", {})
    out = []
    for token in argv:
        flag, eq, value = token.partition("=")
        out.append(aliases.get(flag, flag) + eq + value if flag in aliases else token)
    return out


def _complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion when argcomplete is installed (README: `eval "$(register-python-argcomplete
    edge-tl)"` in bash; zsh with bashcompinit). A no-op otherwise and outside completion."""
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-tl",
        description="Image classifiers from a folder of labelled photos to a low-latency "
        "service on a camera: train, export, predict, stream, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"edge-tl {__version__}")
    # before or after the command: `edge-tl -q train ...` = `edge-tl train -q ...`; SUPPRESS
    # keeps the command's parser from resetting what the top level set
    for parent in (parser, common := argparse.ArgumentParser(add_help=False)):
        default = False if parent is parser else argparse.SUPPRESS
        parent.add_argument(
            "--debug", action="store_true", default=default, help="show tracebacks and debug logs"
        )
        parent.add_argument(
            "-q", "--quiet", action="store_true", default=default, help="only warnings and results"
        )
    parser.set_defaults(json=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_command(
        name: str, handler: Callable[[argparse.Namespace], int | None], help: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    for group in _GROUPS:
        group.register(add_command)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    from edge_tl.progress import set_enabled

    quiet = args.quiet or args.json
    set_enabled(not quiet)
    level = logging.DEBUG if args.debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("edge_tl").setLevel(level)
