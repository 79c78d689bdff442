"""The ``optiscope`` command: one module per subcommand, thin over the library."""

from __future__ import annotations

import argparse
import sys

from optiscope import OptiscopeError


def build_parser() -> argparse.ArgumentParser:
    from optiscope import __version__
    from optiscope.cli import analyze, diagnose, lab, landscape, report

    parser = argparse.ArgumentParser(
        prog="optiscope",
        description="Measure why training a neural network is hard, and say what to try.",
    )
    parser.add_argument("--version", action="version", version=f"optiscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    diagnose.register(sub)
    analyze.register(sub)
    landscape.register(sub)
    lab.register(sub)
    report.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except OptiscopeError as err:
        if args.debug:
            raise
        print(f"optiscope {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"optiscope {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # Not a mistake optiscope recognises: one line still, and the traceback behind --debug.
        if args.debug:
            raise
        print(
            f"optiscope {args.command}: error: unexpected {type(err).__name__}: {_one_line(err)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or repr(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
