"""The attack classes of issue #21, re-run as one bounded suite: hostile inputs through every command that
reads files, faults injected into the run writer, every secret format through every writer, data lost.

Each test counts what it tried and what went wrong, asserts the bad counts are zero, and prints the
counts (``attack-suite: ...`` lines, shown with ``-s`` and in CI logs). Inputs are small or bounded
(the gzip bomb uses a 1 MB limit), so the suite runs in well under a minute.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from tokprof.cli import main
from tokprof.profiler import load_run, profile, record_llm_call, span
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.store import RunWriter
from tests.secret_samples import CUSTOM_PATTERN, SECRETS, in_context

CONTEXT_ONLY = {"aws-secret-access-key", "bearer-token", "basic-auth", "password-assignment", "api-key-assignment",
                "doubao-ark-key", "azure-openai-key", "url-password", "dsn-query-password", "token-named-value",
                "camelcase-apikey-value"}


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\nattack-suite: {line}")


# ---------------------------------------------------------------------------------------------------
# hostile inputs
# ---------------------------------------------------------------------------------------------------
def _otlp(attrs: dict[str, Any], span_over: dict[str, Any] | None = None, resource: dict[str, Any] | None = None) -> str:
    def kv(d: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}}
                for k, v in d.items()]

    sp = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": "1",
          "endTimeUnixNano": "2", "attributes": kv({"gen_ai.request.model": "gpt-4o", **attrs})}
    sp.update(span_over or {})
    return json.dumps({"resourceSpans": [{"resource": {"attributes": kv(resource or {})},
                                          "scopeSpans": [{"spans": [sp]}]}]})


def _chatlog(**over: Any) -> str:
    line = {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}
    line.update(over)
    return json.dumps(line)


def _runfile(*records: dict[str, Any]) -> str:
    return "\n".join(json.dumps(r) for r in [{"type": "run", "schema": 1, "run_id": "h", "name": "h"}, *records,
                                             {"type": "end"}]) + "\n"


def _llm_span(sid: str, parent: str | None = None, **over: Any) -> dict[str, Any]:
    d = {"type": "span", "span_id": sid, "parent_id": parent, "kind": "llm", "name": "c", "start_ns": 0,
         "end_ns": 1, "llm": {"model": "gpt-4o", "messages": [], "usage": {"input_tokens": 1, "output_tokens": 1}}}
    d.update(over)
    return d


DEEP = "[" * 200_000 + "]" * 200_000
HOSTILE: list[tuple[str, str, str | bytes]] = [
    # (name, file name, content)
    ("otlp-1e999-time", "t.json", _otlp({}, {"startTimeUnixNano": 1e999})),
    ("otlp-inf-time", "t.json", _otlp({}, {"startTimeUnixNano": "inf", "endTimeUnixNano": "Infinity"})),
    ("otlp-huge-int-time", "t.json", _otlp({}, {"startTimeUnixNano": "9" * 5000})),
    ("otlp-negative-tokens", "t.json", _otlp({"gen_ai.usage.input_tokens": -50})),
    ("otlp-1e308-tokens", "t.json", _otlp({"gen_ai.usage.input_tokens": "1e308"})),
    ("otlp-path-run-id", "t.json", _otlp({}, resource={"tokprof.run.id": "../../../escape"})),
    ("otlp-300-char-run-id", "t.json", _otlp({}, resource={"tokprof.run.id": "x" * 300})),
    ("otlp-markup-names", "t.json", _otlp({"gen_ai.request.model": "[/] \x1b[2J"}, {"name": "[/]x[/]"})),
    ("otlp-deep-attribute", "t.json", _otlp({"tokprof.attributes": DEEP})),
    ("otlp-self-parent", "t.json", _otlp({}, {"parentSpanId": "cd" * 8})),
    ("otlp-wrong-types", "t.json", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [7, "x", None]}]}]})),
    ("otlp-spans-not-list", "t.json", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]})),
    ("deep-json-document", "t.json", '{"resourceSpans": ' + DEEP + "}"),
    ("chatlog-one-bad-line", "c.jsonl", _chatlog() + "\n{not json\n" + _chatlog() + "\n"),
    ("chatlog-deep-line", "c.jsonl", _chatlog() + "\n" + '{"request": ' + DEEP + "}\n"),
    ("chatlog-inf-usage", "c.jsonl", _chatlog(response={"usage": {"prompt_tokens": 1e999}})),
    ("chatlog-string-usage", "c.jsonl", _chatlog(response={"usage": {"prompt_tokens": "lots"}})),
    ("chatlog-messages-not-list", "c.jsonl", _chatlog(request={"model": "gpt-4o", "messages": "hi"})),
    ("chatlog-decimal-overflow", "c.jsonl", _chatlog(request={"model": "gpt-4o", "messages": [],
                                                               "temperature": "1e999999999"})),
    ("tau2-wrong-types", "r.json", json.dumps({"simulations": [{"messages": 5}, None, "x"], "tasks": 3})),
    ("tau2-deep", "r.json", '{"simulations": ' + DEEP + "}"),
    ("tau1-garbage", "r.json", json.dumps([{"traj": 5}, {"traj": [None, 1]}])),
    ("swe-inf", "x.traj", json.dumps({"history": [{"role": "user", "content": "x"}],
                                       "trajectory": [{"execution_time": 1e999}]})),
    ("binary-garbage", "t.json", os.urandom(4096)),
    ("empty", "t.json", ""),
    ("bom-only", "t.json", "\ufeff"),
    ("run-parent-cycle", "r.jsonl", _runfile(_llm_span("1", "2"), _llm_span("2", "1"))),
    ("run-self-parent", "r.jsonl", _runfile(_llm_span("1", "1"))),
    ("run-negative-tokens", "r.jsonl", _runfile(_llm_span("1", llm={"model": "m", "messages": [],
                                                                      "usage": {"input_tokens": -1}}))),
    ("run-1e308-tokens", "r.jsonl", _runfile(_llm_span("1", llm={"model": "m", "messages": [],
                                                                   "usage": {"input_tokens": 1e308}}))),
    ("run-inf-times", "r.jsonl", _runfile(_llm_span("1", start_ns=1e999, end_ns=-1e999))),
    ("run-wrong-types", "r.jsonl", _runfile(_llm_span("1", name=["x"], llm="nope"))),
    ("run-markup-names", "r.jsonl", _runfile(_llm_span("1", name="[/] \x1b]0;t\x07"))),
    ("run-deep-line", "r.jsonl", _runfile({"type": "span", "attributes": json.loads("[" * 50 + "]" * 50)}) + DEEP + "\n"),
    ("run-wrong-schema", "r.jsonl", json.dumps({"type": "run", "schema": 99}) + "\n"),
    ("run-missing-payload", "r.jsonl", _runfile(_llm_span("1", llm={"model": "m", "messages": {"$refs": ["nope"]}}))),
    ("run-bad-base", "r.jsonl", _runfile(_llm_span("1", llm={"model": "m", "messages": {"$base": "9", "$keep": 1e9}}))),
    ("run-path-id", "r.jsonl", _runfile().replace('"run_id": "h"', '"run_id": "../../../x"')),
    ("run-truncated", "r.jsonl", _runfile(_llm_span("1"))[:-20]),
]


def _gzip_bomb(path: Path) -> None:
    # ~10 MB of zeros (a few KB compressed): with a 1 MB limit it must stop while streaming
    with gzip.open(path, "wb") as fh:
        for _ in range(10):
            fh.write(b"0" * (1 << 20))


def _commands_for(path: Path, out: Path) -> list[list[str]]:
    cmds = [["import", str(path), "--out", str(out / "imported")],
            ["report", str(path), "--no-html", "--json"],
            ["count", str(path), "--model", "gpt-4o"]]
    if path.name.endswith(".jsonl"):
        cmds += [["show", str(path)], ["optimize", str(path), "--out", str(out / "opt"), "--json"]]
    return cmds


def test_hostile_inputs_never_give_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TOKPROF_MAX_INPUT_BYTES", str(1 << 20))
    monkeypatch.chdir(tmp_path)
    cases: list[tuple[str, Path]] = []
    for i, (name, fname, content) in enumerate(HOSTILE):
        d = tmp_path / f"in{i}"
        d.mkdir()
        p = d / fname
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)  # type: ignore[operator]
        cases.append((name, p))
    bomb = tmp_path / "bomb" / "t.json.gz"
    bomb.parent.mkdir()
    _gzip_bomb(bomb)
    cases.append(("gzip-bomb", bomb))
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "f.jsonl")
    (fifo_dir / "zero.jsonl").symlink_to("/dev/zero")
    (fifo_dir / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    cases += [("fifo", fifo_dir / "f.jsonl"), ("dev-zero-link", fifo_dir / "zero.jsonl"),
              ("dangling-link", fifo_dir / "dangling.jsonl")]

    runs, tracebacks, escaped = 0, [], []
    for name, path in cases:
        for argv in _commands_for(path, tmp_path / "out"):
            if name in ("fifo", "dev-zero-link") and argv[0] in ("count",):
                continue  # `count` reads what it is given, like `wc`: a FIFO is the user's choice
            runs += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    main(argv)
            except SystemExit:
                pass
            except BaseException as exc:  # noqa: BLE001 - this is what the suite counts
                tracebacks.append(f"{name}: tokprof {argv[0]}: {type(exc).__name__}: {str(exc)[:120]}")
        capsys.readouterr()
    written = [p for p in tmp_path.rglob("*.jsonl") if "out" in p.parts]
    escaped = [p for p in tmp_path.parent.rglob("escape*")] + [p for p in written if len(p.name) > 90]
    _report(capsys, f"hostile inputs {len(cases)} ({runs} command runs), tracebacks {len(tracebacks)}, "
                    f"files outside their folder {len(escaped)}")
    assert tracebacks == [] and escaped == []


# ---------------------------------------------------------------------------------------------------
# faults injected into the writer; data lost
# ---------------------------------------------------------------------------------------------------
class _Flaky:
    def __init__(self, fh: Any, fail: Callable[[int], bool]) -> None:
        self._fh, self._fail, self.n = fh, fail, 0

    def write(self, b: Any) -> int:
        self.n += 1
        if self._fail(self.n):
            self._fh.write(bytes(b)[: len(b) // 3])  # a torn write
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(b)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _agent_run(n: int) -> Run:
    run = Run(run_id="fault", name="fault")
    hist: list[dict[str, str]] = []
    for i in range(n):
        hist = hist + [{"role": "user", "content": f"turn {i} " + "w" * 40}]
        s = Span(str(i + 1), None, "fault", "llm", "chat", i, i, i + 1)
        s.llm = LLMCall(model="gpt-4o", messages=list(hist), usage=Usage.from_provider(input_tokens=100 * (i + 1),
                                                                                     output_tokens=10))
        run.spans.append(s)
    return run


FAULTS: list[tuple[str, Callable[[int], bool]]] = [
    ("enospc-once", lambda n: n == 3),
    ("enospc-burst", lambda n: 4 <= n <= 9),
    ("enospc-every-other", lambda n: n % 2 == 0 and n < 30),
    ("enospc-every-third", lambda n: n % 3 == 0 and n < 40),
    ("enospc-first-write", lambda n: n == 1),
    ("enospc-at-close", lambda n: n == 21),
]


def test_writer_faults_lose_no_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    injected = survived = 0
    lost_spans = lost_tokens = 0
    for name, fail in FAULTS:
        run = _agent_run(20)
        w = RunWriter.open(run, tmp_path / name)
        w._fh = _Flaky(w._fh, fail)
        injected += 1
        for s in run.spans:
            try:
                w.write_span(s)
            except OSError:
                pass
        try:
            w.close(run)
        except OSError:
            pass  # the end line could not be written: the profile logs it once; the file loads as incomplete
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = load_run(w.path)
        got = {s.span_id: s for s in back.llm_spans()}
        ok = True
        for s in run.spans:
            b = got.get(s.span_id)
            if b is None or b.llm.messages != s.llm.messages:
                lost_spans += 1
                lost_tokens += s.llm.usage.input_tokens
                ok = False
        survived += ok  # every span there, whole; (without an end line the run says it is incomplete)
    # the other fault classes: lone surrogates, a span finishing after exit, a forked child
    with profile("s", save=str(tmp_path / "misc")) as p:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": os.fsdecode(b"\xff")}], output="x",
                        usage={"input_tokens": 1, "output_tokens": 1})
        late = __import__("tokprof.profiler.hooks", fromlist=["start_span"]).start_span("late")
        pid = os.fork()
        if pid == 0:
            try:
                with span("child"):
                    pass
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    __import__("tokprof.profiler.hooks", fromlist=["end_span"]).end_span(late)
    back = load_run(p.path)
    injected += 3
    survived += (back.llm_spans()[0].llm.messages[0]["content"] == os.fsdecode(b"\xff")) + \
        (any(s.name == "late" for s in back.spans)) + (not any(s.name == "child" for s in back.spans))
    _report(capsys, f"faults injected {injected}, survived {survived}; data lost: {lost_spans} spans, "
                    f"{lost_tokens} tokens")
    assert (survived, lost_spans, lost_tokens) == (injected, 0, 0)


# ---------------------------------------------------------------------------------------------------
# every secret format through every writer
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def _custom_pattern() -> Any:
    from tokprof.profiler import redact

    redact.add_pattern(CUSTOM_PATTERN, "acme-token")  # the user's own format, registered as users do
    yield
    redact.clear_patterns()


def test_no_secret_format_leaks_through_any_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    _custom_pattern: Any) -> None:
    import logging

    from tokprof.optimizers.response_cache import ResponseCache
    from tokprof.profiler.hooks import _reset_internal_errors, internal_error
    from tokprof.profiler.interchange.otlp import write_otlp

    def text_for(kind: str, secret: str) -> str:
        return in_context(kind, secret) if kind in CONTEXT_ONLY else f"the key is {secret}"

    tools = [{"type": "function", "function": {"name": f"t{i}", "description": text_for(k, s)}}
             for i, (k, s) in enumerate(SECRETS.items())]
    with profile("secrets", save=str(tmp_path / "runs"), tags={"k": text_for("openai-project", SECRETS["openai-project"])}) as p:
        for kind, secret in SECRETS.items():
            with span("tool", kind="tool", attributes={"out": text_for(kind, secret)}):
                record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": text_for(kind, secret)}],
                                tools=tools, output=text_for(kind, secret), usage={"input_tokens": 1, "output_tokens": 1})
    run = load_run(p.path)
    write_otlp([p], tmp_path / "export" / "t.json")
    assert main(["report", str(p.path), "-o", str(tmp_path / "report" / "r.html")]) == 0
    cache = ResponseCache(tmp_path / "cache", deterministic_only=False)
    for kind, secret in SECRETS.items():
        cache.set(kind, {"content": text_for(kind, secret)})
    cache.close()
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("tokprof").addHandler(handler)
    try:
        _reset_internal_errors()
        for kind, secret in SECRETS.items():
            internal_error(f"attack {kind}", ValueError(text_for(kind, secret)))
    finally:
        logging.getLogger("tokprof").removeHandler(handler)
    writers = {"run file": tmp_path / "runs", "OTLP export": tmp_path / "export", "HTML report": tmp_path / "report",
               "response cache": tmp_path / "cache"}
    leaked = []
    for writer, folder in writers.items():
        data = b"".join(f.read_bytes() for f in folder.rglob("*") if f.is_file())
        for kind, secret in SECRETS.items():
            forms = {secret, json.dumps(secret)[1:-1]} | {line for line in secret.splitlines() if len(line) > 30 and "---" not in line}
            if any(f.encode() in data for f in forms):
                leaked.append((writer, kind))
    logs = log.getvalue()
    leaked += [("log", k) for k, s in SECRETS.items() if s in logs]
    assert run.llm_spans()
    _report(capsys, f"secret formats {len(SECRETS)} x writers {len(writers) + 1}, leaked {len(leaked)}"
                    + (f": {leaked[:5]}" if leaked else ""))
    assert leaked == []


# ---------------------------------------------------------------------------------------------------
# hostile run files through every command (red team): tests/hostile_runs.py
# ---------------------------------------------------------------------------------------------------
def _every_command(path: Path, folder: Path, good: Path, out: Path) -> list[list[str]]:
    return [["show", str(path)], ["show", str(path), "--json"], ["show", "--dir", str(folder)],
            ["report", str(path), "--no-html", "--json"], ["report", str(path), "-o", str(out / "r.html")],
            ["optimize", str(path), "--out", str(out / "opt"), "--json"], ["import", str(path), "--out", str(out / "imp")],
            ["compare", str(path), str(good), "--no-html", "--json"], ["count", str(path), "--model", "gpt-4o"],
            ["whatif", str(path), "--model", "gpt-4o-mini", "--json"],
            ["ingest", str(path), "--ledger", str(out / "l.duckdb"), "--json"],
            ["stats", "--dir", str(folder), "--ledger", str(out / "s.duckdb"), "--json"],
            ["ls", "--dir", str(folder)], ["ls", "--dir", str(folder), "--json"]]


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """One command; what went wrong (an uncaught exception or a traceback printed), or ``None``."""
    import signal

    def hang(*_: Any) -> None:
        raise TimeoutError("no answer in 120 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)  # a hang fails the case instead of the suite (far above any normal run here)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main(argv)
    except SystemExit:
        pass
    except BaseException as exc:  # noqa: BLE001 - this is what the suite counts
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    return "traceback printed" if "Traceback" in err else None


def _place(root: Path, i: int, fname: str, content: str | bytes) -> Path:
    d = root / f"case{i}"
    d.mkdir(parents=True)
    p = d / fname
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def _setup_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.hostile_runs import TEXT

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TOKPROF_MAX_INPUT_BYTES", str(4 << 20))
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good" / "good.jsonl"
    good.parent.mkdir()
    good.write_text(TEXT)
    return good


def test_hostile_run_files_through_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.hostile_runs import CASES

    good = _setup_cli(tmp_path, monkeypatch)
    inputs = tmp_path / "in"
    placed = [(name, _place(inputs, i, fname, content)) for i, (name, fname, content) in enumerate(CASES)]
    folder_named_jsonl = inputs / "dir" / "run.jsonl"
    folder_named_jsonl.mkdir(parents=True)
    placed.append(("folder-named-jsonl", folder_named_jsonl))
    before = {inputs, *inputs.rglob("*")}
    runs, failures = 0, []
    for i, (name, path) in enumerate(placed):
        for argv in _every_command(path, path.parent, good, tmp_path / "out" / str(i)):
            runs += 1
            problem = _run_cli(argv, capsys)
            if problem:
                failures.append(f"{name}: tokprof {' '.join(argv[:1])}: {problem}")
    stray = [p for p in tmp_path.rglob("*") if p not in before and not p.is_relative_to(tmp_path / "out")
             and not p.is_relative_to(tmp_path / "runs") and not p.is_relative_to(tmp_path / "good")
             and not p.is_relative_to(tmp_path / "home")]
    _report(capsys, f"hostile run files {len(placed)} x 14 commands ({runs} runs), tracebacks {len(failures)}, "
                    f"files written outside out/runs {len(stray)}")
    assert failures == [] and stray == []


def _downstream_params() -> list[Any]:
    from tests.hostile_runs import DOWNSTREAM

    return [pytest.param(name, fname, content, cmd, id=name) for name, fname, content, cmd, _ in DOWNSTREAM]


@pytest.mark.parametrize("name,fname,content,command", _downstream_params())
def test_hostile_run_files_repaired_at_the_boundary(name: str, fname: str, content: str | bytes, command: str,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Each crashed a command past the loader (tool-call ``.get``, an unhashable role or tag, a time beyond
    int64) before the loader repaired the field at the boundary; the command now runs without a traceback."""
    good = _setup_cli(tmp_path, monkeypatch)
    path = _place(tmp_path / "in", 0, fname, content)
    argv = next(a for a in _every_command(path, path.parent, good, tmp_path / "out") if a[0] == command)
    assert _run_cli(argv, capsys) is None


# ---------------------------------------------------------------------------------------------------
# single-field mutations (tests/mutation_sweep.py): a bounded representative set of the full sweep
# (benchmarks/sweep_mutations.py runs all ~1,300 mutations x 9 commands)
# ---------------------------------------------------------------------------------------------------
def test_field_mutations_through_the_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.mutation_sweep import representative

    _setup_cli(tmp_path, monkeypatch)
    cases = representative(every=80, focus_every=10)
    failures: list[str] = []
    runs = 0
    for i, (name, text) in enumerate(cases):
        path = _place(tmp_path / "mut", i, "run.jsonl", text)
        out = tmp_path / "out" / f"m{i}"
        for argv in (["show", str(path)], ["show", str(path), "--json"],
                     ["report", str(path), "--no-html", "--json"],
                     ["optimize", str(path), "--out", str(out / "opt"), "--json"],
                     ["count", str(path), "--model", "gpt-4o"],
                     ["export", str(path), "-o", str(out / "otlp.json")]):
            runs += 1
            problem = _run_cli(argv, capsys)
            if problem:
                failures.append(f"{name}: tokprof {argv[0]}: {problem}")
    _report(capsys, f"field mutations {len(cases)} x 6 commands ({runs} runs), tracebacks {len(failures)}")
    assert failures == []
