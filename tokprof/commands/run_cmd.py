"""`tokprof run SCRIPT [ARGS...]`: run a Python script under a profile and save the run."""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from tokprof.profiler import profile


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "run",
        help="run a Python script under a profile and save the run",
        description="Run SCRIPT with ARGS under tokprof: every @trace function, LangChain run and "
                    "instrumented SDK call is recorded, streamed to .tokprof/runs/<run-id>.jsonl as it "
                    "finishes (a crash keeps what was recorded), and summarised at the end.",
    )
    p.add_argument("script", help="the Python file to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.add_argument("--name", help="run name (default: the script's name)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="attribution tag, repeatable (team=payments, feature=refunds)")
    p.add_argument("--instrument", action="append", default=[],
                   choices=["openai", "anthropic", "litellm", "google-genai", "openai-agents"],
                   help="also import and instrument this SDK (repeatable; SDKs the script imports are instrumented "
                        "automatically unless TOKPROF_INSTRUMENT=0)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=run_command)


def parse_tags(items: list[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


def run_command(args: argparse.Namespace) -> int:
    script = Path(args.script)
    if not script.is_file():
        raise FileNotFoundError(f"{script}: no such script")
    tags = parse_tags(args.tag)
    old_argv = sys.argv
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(script.resolve().parent))
    code = 0
    p = profile(args.name or script.stem, tags=tags, save=args.dir or True, instrument=args.instrument,
                metadata={"script": str(script), "argv": args.args})
    run = p.__enter__()
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        p.__exit__(None, None, None)
    except KeyboardInterrupt as exc:
        p.__exit__(type(exc), exc, exc.__traceback__)
        raise
    except BaseException as exc:
        # The script's own exception: recorded on the run, then shown as Python would show it.
        p.__exit__(type(exc), exc, exc.__traceback__)
        import traceback

        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != str(script) and tb.tb_next is not None:
            tb = tb.tb_next  # hide tokprof's and runpy's frames
        traceback.print_exception(type(exc), exc, tb)
        code = 1
    else:
        p.__exit__(None, None, None)
    finally:
        sys.argv = old_argv
    summary = run.summary()
    if args.json:
        print(json.dumps({**summary.to_dict(), "path": str(run.path)}, indent=2))
    else:
        from tokprof.console_safe import clean

        print(clean(summary), file=sys.stderr)
        print(clean(f"saved {run.path}"), file=sys.stderr)
    return code
