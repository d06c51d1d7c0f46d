"""The ``tokprof`` command line. Each subcommand lives in its own module under ``tokprof.commands`` and
registers itself with :func:`register(subparsers)`; this file only assembles them."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from tokprof.errors import UserFacingError

# Order is the order shown in --help.
COMMANDS: tuple[str, ...] = ("demo", "run", "show", "ls", "count", "import", "export", "optimize", "report", "compare", "models", "collect")
COMMANDS += ("whatif", "verify")  # issue #16
COMMANDS += ("ingest", "stats", "budget")  # the fleet ledger (tokprof.fleet)


def _version() -> str:
    """The installed distribution's version (a source checkout without metadata says so)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokprof")
    except PackageNotFoundError:
        return "(not installed: source checkout)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokprof",
        description="Where do your agent's LLM tokens (and money) go? Profile a run, optimize it, report it.",
        epilog="Start with `tokprof demo`. Every command that prints a summary takes --json. "
               "Runs are stored in .tokprof/runs (override with --dir or $TOKPROF_DIR).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log tokprof's own debug messages")
    parser.add_argument("-V", "--version", action="version", version=f"tokprof {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"tokprof.commands.{name.replace('-', '_')}_cmd")
        module.register(sub)
    return parser


def cli_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                line: str | None = None) -> str:
    """A warning as the CLI prints it: one line, ``tokprof: warning: ...``, without the Python file and
    source line the default format adds (they tell a user nothing); control characters removed."""
    from tokprof.console_safe import clean

    text = str(message).strip()
    ours = text.startswith("tokprof:") or category.__module__.startswith("tokprof")
    text = text.removeprefix("tokprof:").strip()
    if not ours:  # another library's: say which kind it is
        text = f"{category.__name__}: {text}"
    return clean(f"tokprof: warning: {text}") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="tokprof: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    # Warnings quote model names and paths from the data: no control characters reach the terminal.
    # Restored on the way out: main() called in-process again (tests, a host app) must not stack wrappers.
    plain_format = warnings.formatwarning
    warnings.formatwarning = cli_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing errors: one line naming what and where, no traceback
        # An OSError here is about a path or the disk the user gave (``-o`` names a folder, ``--out`` names a
        # file, disk full, no permission): one line with the reason, like any user-facing error.
        if isinstance(exc, (UserFacingError, OSError)) and not args.verbose:
            from tokprof.console_safe import clean

            print(clean(f"tokprof: error: {exc}"), file=sys.stderr)
            return 1
        raise
    finally:
        warnings.formatwarning = plain_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
