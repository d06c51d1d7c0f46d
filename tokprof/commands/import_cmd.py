"""`tokprof import FILE...`: turn traces recorded elsewhere into tokprof runs, one run file per run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from tokprof.console_safe import escape
from tokprof.profiler.interchange import FORMATS, InterchangeError, import_file, is_trace_name
from tokprof.profiler.interchange.summary import ImportTotals
from tokprof.profiler.model import Run
from tokprof.profiler.providers.as_paid import BASES, CostRange, run_paid, total_range
from tokprof.profiler.run_paths import runs_dir
from tokprof.profiler.run_writer import save_run

# What a folder walk picks up (explicitly named files are always tried).


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "import",
        help="import runs from tau2-bench, tau-bench, SWE-agent, chat logs, OTLP-JSON, Claude Code, Codex, "
             "Gemini CLI, Qwen Code or OpenCode",
        description="Import FILE... (folders are searched recursively for .json/.jsonl/.ndjson/.traj, "
                    "optionally .gz) into tokprof runs, saved one file per run to the runs folder. The format "
                    "is detected unless --format is given. Usage the file lacks is counted locally; every "
                    "count keeps its source (provider/counted/estimated). Records that cannot be imported "
                    "are reported with file and record; the rest are imported.",
        epilog="--json prints {schema, files:[{path, format, runs, calls, records, errors, error_reasons, "
               "failed}], runs, calls, tool_spans, tokens:{input, output, cache_read, cache_write, reasoning, "
               "total}, tokens_by_source:{source:{input, output}}, cost:{amount (what the runs paid, as `show` gives it), "
               "currency, basis:{basis: calls}, label, range:{best, expected, worst, ...}, as_recorded (no caching "
               "simulated), by_source, unpriced_calls, unpriced_models}, paid, models:{model: calls}, errors, "
               "failed_files, out}.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="trace files or folders")
    p.add_argument("--claude-code", action="store_true",
                   help="also import every Claude Code session transcript (<home>/projects/*/*.jsonl; home: "
                        "--path, else $CLAUDE_CONFIG_DIR, else ~/.claude)")
    p.add_argument("--codex", action="store_true",
                   help="also import every Codex CLI session log (<home>/sessions/YYYY/MM/DD/rollout-*.jsonl; "
                        "home: --path, else $CODEX_HOME, else ~/.codex)")
    p.add_argument("--gemini", action="store_true",
                   help="also import every Gemini CLI chat recording (<home>/tmp/*/chats/session-*.json; home: "
                        "--path, else ~/.gemini)")
    p.add_argument("--qwen-code", action="store_true",
                   help="also import every Qwen Code session (<home>/projects/*/chats/*.jsonl; home: --path, else "
                        "$QWEN_RUNTIME_DIR, else $QWEN_HOME, else ~/.qwen)")
    p.add_argument("--opencode", action="store_true",
                   help="also import every top-level OpenCode session with its sub-agent sessions "
                        "(<home>/opencode.db, else <home>/storage/session/*/*.json; home: --path, else "
                        "$XDG_DATA_HOME/opencode, else ~/.local/share/opencode)")
    p.add_argument("--path", metavar="DIR", help="the coding agent's home folder for --claude-code/--codex/--gemini/"
                                                 "--qwen-code/--opencode")
    p.add_argument("--format", choices=sorted(FORMATS), help="the files' format (default: detect)")
    p.add_argument("--out", metavar="DIR", help="save runs here (default: the runs folder, .tokprof/runs "
                                                "or $TOKPROF_DIR)")
    p.add_argument("--no-save", action="store_true", help="only summarise; do not write run files")
    p.add_argument("--currency", default=None, type=str.upper, choices=["USD", "CNY"],
                   help="currency of the cost (default: the imported runs' own, as `show` gives it: "
                        "$TOKPROF_CURRENCY, else CNY for CNY-priced models, else USD)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=import_command)


def expand(paths: list[str]) -> list[Path]:
    """Files named, plus trace files found under folders named (sorted, so imports are reproducible)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(f for f in sorted(p.rglob("*")) if f.is_file() and is_trace_name(f.name))
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def agent_home(flag: str, override: str | None) -> Path:
    """The coding agent's home folder: ``--path``, else its own environment variable, else the default."""
    import os

    if flag == "opencode" and not override:
        xdg = os.environ.get("XDG_DATA_HOME")
        return Path(xdg) / "opencode" if xdg else Path("~/.local/share/opencode").expanduser()
    env, default = {"claude_code": ("CLAUDE_CONFIG_DIR", "~/.claude"), "codex": ("CODEX_HOME", "~/.codex"),
                    "gemini_cli": ("GEMINI_CLI_HOME", "~/.gemini"), "qwen_code": ("QWEN_HOME", "~/.qwen"),
                    "opencode": ("", "")}[flag]
    if flag == "qwen_code" and not override and os.environ.get("QWEN_RUNTIME_DIR"):
        return Path(os.environ["QWEN_RUNTIME_DIR"]).expanduser()  # where newer releases keep projects/*/chats
    return Path(override or os.environ.get(env) or default).expanduser()


def discover(flag: str, home: Path) -> list[Path]:
    """Session files under a coding agent's home (sorted). Claude Code sub-agent files are read with their
    session, so they are not listed on their own."""
    if flag == "claude_code":
        root = home / "projects" if (home / "projects").is_dir() else home
        return sorted(f for f in root.rglob("*.jsonl") if "subagents" not in f.parts)
    if flag == "gemini_cli":
        root = home / "tmp" if (home / "tmp").is_dir() else home
        return sorted(root.rglob("session-*.json"))
    if flag == "qwen_code":
        root = home / "projects" if (home / "projects").is_dir() else home
        return sorted(f for f in root.rglob("*.jsonl") if f.parent.name == "chats")
    if flag == "opencode":
        return opencode_sessions(home)
    root = home / "sessions" if (home / "sessions").is_dir() else home
    return sorted(root.rglob("rollout-*.jsonl"))


def opencode_sessions(home: Path) -> list[Path]:
    """OpenCode's sessions: its SQLite database when there is one (current releases, which migrated the JSON
    storage into it: reading both would count every session twice), else the top-level session files of the
    JSON storage; a child session (a sub-agent) is imported inside its parent."""
    if (home / "opencode.db").is_file():
        return [home / "opencode.db"]
    root = home / "storage" if (home / "storage").is_dir() else home
    sdir = root / "session"
    out = []
    for f in sorted(sdir.rglob("*.json")) if sdir.is_dir() else []:
        if {"message", "part"} & set(f.relative_to(sdir).parts[:-1]):
            continue  # the older layout keeps messages and parts under session/
        try:
            info = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            out.append(f)  # let the importer report it
            continue
        if not (isinstance(info, dict) and info.get("parentID")):
            out.append(f)
    return out


def import_command(args: argparse.Namespace) -> int:
    from tokprof.console_safe import SafeConsole as Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    jobs: list[tuple[Path, str | None]] = [(f, args.format) for f in expand(args.files)]
    for flag, attr in (("claude_code", "claude_code"), ("codex", "codex"), ("gemini_cli", "gemini"),
                       ("qwen_code", "qwen_code"), ("opencode", "opencode")):
        if getattr(args, attr, False):
            home = agent_home(flag, args.path)
            found = discover(flag, home)
            if not found:
                raise FileNotFoundError(f"no {flag.replace('_', ' ')} sessions under {home}; pass --path DIR "
                                        "if they live elsewhere")
            jobs.extend((f, flag) for f in found)
    if not jobs:
        if not args.files:
            raise ValueError("nothing to import: name FILE... or pass --claude-code / --codex / --gemini / "
                             "--qwen-code / --opencode")
        raise FileNotFoundError(f"no trace files (.json, .jsonl, .ndjson, .traj, optionally .gz) in "
                                f"{' '.join(args.files)}")
    files = [f for f, _ in jobs]
    out_dir = runs_dir(args.out)
    from tokprof.profiler.providers.currency import run_currency

    currency = run_currency([], args.currency)
    totals = ImportTotals(currency)
    paid = _PaidTotals(currency)
    # Without --currency the totals are in the runs' own currency, as `show` gives it: decided by the first
    # runs imported ($TOKPROF_CURRENCY, else CNY for CNY-priced models), before anything is added up.
    currency_open = not args.currency
    err = Console(stderr=True)
    saved: dict[str, str] = {}  # run id -> file it came from (ids derive from file names: keep them apart)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True, disable=args.json and not err.is_terminal) as bar:
        task = bar.add_task("importing", total=len(files))
        for f, fmt in jobs:
            bar.update(task, description=f"importing {escape(f.name[:40])}")
            try:
                result = import_file(f, fmt)
            except InterchangeError as exc:
                totals.add_file(None, str(f), fmt, failure=exc)
                bar.advance(task)
                continue
            if currency_open and result.runs:
                totals.currency = paid.currency = run_currency(result.runs)
                currency_open = False
            for run in result.runs:
                src = str(f.resolve())
                if saved.setdefault(run.run_id, src) != src:
                    # a same-named file from another folder: a new id from its full path, so neither
                    # run overwrites the other (the id it would have had stays in the metadata)
                    from tokprof.profiler.interchange.base import stable_id

                    run.metadata.setdefault("import_id", run.run_id)
                    run.run_id = stable_id(run.run_id, src)
                    for sp in run.spans:
                        sp.run_id = run.run_id
                    saved[run.run_id] = src
                if not args.no_save:
                    save_run(run, out_dir)
                totals.add_run(run)
            totals.add_file(result, str(f))
            paid.add(result.runs)
            # Runs are saved and counted: let them go, so a big corpus does not sit in memory.
            result.runs.clear()
            bar.advance(task)
    summary = totals.to_dict()
    summary["paid"] = paid.to_dict()
    # The cost is what the runs paid (the figure show, optimize, report and compare give); the costs as the
    # file recorded them, with no caching simulated, stay beside it.
    c = summary["cost"]
    c["as_recorded"] = c["amount"]
    if summary["paid"]["expected"] is not None:
        c["amount"] = summary["paid"]["expected"]
    c["basis"], c["label"], c["range"] = summary["paid"]["bases"], summary["paid"]["label"], summary["paid"]["range"]
    summary["out"] = None if args.no_save else str(out_dir)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary, Console(file=sys.stdout))
    return 1 if summary["failed_files"] else 0


def render(s: dict[str, Any], console: Any) -> None:
    """The one-screen summary: a row per file, then totals."""
    from rich.table import Table


    t = Table(title=f"imported {s['runs']} runs, {s['calls']} model calls from {len(s['files'])} files",
              title_justify="left", show_edge=False, pad_edge=False)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("file", "left"), ("format", "left"), ("runs", "right"), ("calls", "right"), ("errors", "right"))
    for col, just in columns:
        # Only the file name may be cut short; numbers never are.
        t.add_column(col, justify=just, no_wrap=True, overflow="ellipsis" if col == "file" else "fold",
                     max_width=36 if col == "file" else None, min_width=None if col == "file" else len(col))
    for f in s["files"][:20]:
        status = "FAILED" if f["failed"] else (str(f["errors"]) if f["errors"] else "")
        t.add_row(Path(f["path"]).name, f["format"] or "?", str(f["runs"]), str(f["calls"]), status)
    if len(s["files"]) > 20:
        t.add_row(f"... {len(s['files']) - 20} more files", "", "", "", "")
    console.print(t)
    tok = s["tokens"]
    console.print(f"tokens   in {tok['input']:,} (cached {tok['cache_read']:,})  out {tok['output']:,} "
                  f"(reasoning {tok['reasoning']:,})  total {tok['total']:,}")
    total = tok["input"] + tok["output"] or 1
    parts = [f"{src} {(v['input'] + v['output']) / total:.0%}" for src, v in s["tokens_by_source"].items()]
    console.print("sources  " + ", ".join(parts))
    c = s["cost"]
    cost = "unknown" if c["amount"] is None else f"{float(c['amount']):,.4f} {c['currency']}"
    rng = c.get("range") or {}
    spread = "" if rng.get("best") == rng.get("worst") or rng.get("best") is None else \
        f"; range {float(rng['best']):,.4f} best to {float(rng['worst']):,.4f} worst"
    label = f" as paid ({c['label']}{spread})" if c.get("label") else ""
    console.print(f"cost     {cost}{label}")
    detail = ", ".join(f"{k} {float(v):,.4f}" for k, v in c["by_source"].items())
    unpriced = ""
    if c["unpriced_calls"]:
        names = ", ".join(list(c["unpriced_models"])[:3])
        unpriced = f"; {c['unpriced_calls']} calls with no price for {names}"
    if c.get("as_recorded") is not None and (c["as_recorded"] != c["amount"] or unpriced):
        console.print(f"         as recorded, no caching simulated: {float(c['as_recorded']):,.4f} ({detail}{unpriced})")
    elif unpriced:
        console.print(f"         {unpriced[2:]}")
    models = ", ".join(f"{m} x{n}" for m, n in list(s["models"].items())[:8])
    more = f" (+{len(s['models']) - 8} more)" if len(s["models"]) > 8 else ""
    console.print(f"models   {models}{more}")
    for f in s["files"]:
        if f["failed"]:
            console.print(f"[red]failed[/red]  {escape(f['failed'])}", markup=True, highlight=False)
            continue
        if f["errors"]:
            console.print(f"[yellow]{f['errors']} of {f['records']} records not imported[/yellow] from "
                          f"{escape(f['path'])}: " + escape("; ".join(f["error_reasons"][:3])), markup=True,
                          highlight=False)
        if f.get("partial"):
            console.print(f"[yellow]{f['partial']} records imported in part[/yellow] from {escape(f['path'])}: "
                          + escape("; ".join(f["partial_reasons"][:2])), markup=True, highlight=False)
    if s.get("out") and s["runs"]:
        console.print(f"saved to {s['out']}  (see them with `tokprof ls`)")
    elif s.get("out"):
        console.print("nothing imported: no runs were saved")


class _PaidTotals:
    """What the imported runs paid (:func:`tokprof.profiler.providers.as_paid.run_paid`, each run its own
    account): the figure ``show``, ``optimize``, ``report`` and ``compare`` give. A failure here never fails
    the import."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.ranges: list[CostRange] = []
        self.bases: dict[str, int] = {}
        self.failed = False

    def add(self, runs: list[Run]) -> None:
        for run in runs:
            try:
                paid = run_paid(run, self.currency)
            except Exception as exc:  # noqa: BLE001 - the import itself succeeded
                from tokprof.profiler.hooks import internal_error

                self.failed = True
                internal_error("tokprof import: what the runs paid", exc)
                return
            self.ranges.append(paid.total)
            for k, v in paid.bases().items():
                self.bases[k] = self.bases.get(k, 0) + v

    def label(self) -> str:
        return ", ".join(f"{b} {self.bases[b]} call{'s' if self.bases[b] != 1 else ''}"
                         for b in sorted(self.bases, key=lambda b: BASES.index(b) if b in BASES else len(BASES)))

    def to_dict(self) -> dict[str, Any]:
        if self.failed or not self.ranges:
            return {"expected": None, "low": None, "high": None, "bases": self.bases, "label": "", "range": None}
        t = total_range(self.ranges)
        d = t.to_dict() if t.known else None

        def s(v: object) -> str | None:
            return None if v is None else str(v)
        return {"expected": s(t.expected), "low": s(t.low), "high": s(t.high), "bases": self.bases,
                "label": self.label(), "range": d}
