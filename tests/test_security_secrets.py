"""Secrets never reach disk; run files are private; payload capture can be switched off (issue #9, point 4).

30 fake-but-real-format credentials go through prompts, model outputs, tool outputs, ``@trace`` arguments
(positional, keyword, long values captured as reprs), return values and error messages of a profiled
agent; afterwards no file anywhere under the test's folder contains any of them.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from langchain_core.tools import tool as lc_tool

import tokprof.profiler.integrations  # noqa: F401  (the LangChain handler attaches inside profile())
from tokprof.profiler import load_run, profile, record_llm_call, redact, save_run, span, trace
from tokprof.profiler.hooks import reset_internal_errors as _reset_internal_errors
from tests.reliability_support import EchoChatModel
from tests.secret_samples import CUSTOM_PATTERN, SECRETS, in_context

KINDS = sorted(SECRETS)
CONTEXT_ONLY = {"aws-secret-access-key", "bearer-token", "basic-auth", "password-assignment", "api-key-assignment",
                "doubao-ark-key", "azure-openai-key", "url-password", "dsn-query-password", "token-named-value",
                "camelcase-apikey-value"}


@pytest.fixture(autouse=True)
def _custom_pattern():
    redact.clear_patterns()
    redact.add_pattern(CUSTOM_PATTERN, "acme-token")
    yield
    redact.clear_patterns()


def all_file_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def assert_no_secret_in(root: Path) -> int:
    """Every file under ``root`` is free of every secret (also JSON-escaped); returns the files checked."""
    files = all_file_bytes(root)
    assert files, f"nothing was written under {root}"
    for path, data in files:
        for kind, secret in SECRETS.items():
            forms = {secret, json.dumps(secret)[1:-1]}
            # PEM bodies: no line of the key body may survive either.
            forms |= {line for line in secret.splitlines() if len(line) > 30 and "-----" not in line}
            leaked = [form for form in forms if form.encode() in data]
            assert not leaked, f"{kind} secret leaked into {path}"
    return len(files)


def test_there_are_at_least_25_formats():
    assert len(SECRETS) >= 25


@pytest.mark.parametrize("kind", KINDS)
def test_redact_text_removes_each_format(kind):
    secret = SECRETS[kind]
    text = in_context(kind, secret)
    for form in (text, repr(text), json.dumps(text)):
        out = redact.redact_text(form)
        assert secret not in out and "[REDACTED:" in out, (kind, out)
        # The fast pre-check the writer uses must never miss a secret the full patterns find.
        assert redact.may_contain_secret(form)


def test_redact_obj_copies_and_redacts_by_key_name():
    payload = {"headers": {"Authorization": "opaque-session-value-123"}, "api_key": "plainvalue1234",
               "password": "hunter2hunter2", "max_tokens": 512, "input_tokens": 9,
               "nested": [("ok", SECRETS["github-classic-pat"])]}
    before = json.dumps(payload, default=list)
    out = redact.redact_obj(payload)
    assert json.dumps(payload, default=list) == before  # the input is not mutated
    assert out["headers"]["Authorization"] == "[REDACTED:credential]"
    assert out["api_key"] == out["password"] == "[REDACTED:credential]"
    assert out["max_tokens"] == 512 and out["input_tokens"] == 9
    assert out["nested"][0] == ("ok", "[REDACTED:github-token]")


@pytest.mark.parametrize("text", [
    "The risk-assessment-for-the-customer-account is ready.",
    "Set max_tokens=1024 and temperature=0.2; tokens used: 1200.",
    "The user forgot their password and asked for a reset link.",
    "AKIA is a prefix; the order id is ORD-2024-000123.",
    "Bearer of bad news.",
    "def test_secret(): assert True",
])
def test_prose_is_not_redacted(text):
    assert redact.redact_text(text) == text


def test_env_patterns_and_switch(monkeypatch):
    monkeypatch.setenv(redact.ENV_PATTERNS, "INTERNAL-[0-9]{6}\n(")  # the second one is invalid: skipped
    assert redact.redact_text("ticket INTERNAL-123456 done") == "ticket [REDACTED:custom] done"
    monkeypatch.setenv(redact.ENV_PATTERNS, '["ZZ-[a-z]{5}"]')
    assert redact.redact_text("a ZZ-abcde b") == "a [REDACTED:custom] b"
    monkeypatch.setenv(redact.ENV_DISABLE, "0")
    secret = SECRETS["openai-project"]
    assert redact.redact_text(secret) == secret


def run_agent_leaking_everything(folder: Path) -> "profile":
    """A profiled agent that meets every secret in every place a profiler records."""

    @trace(kind="tool")
    def read_env_file(path: str) -> str:  # a tool whose output carries the secret
        return "\n".join(in_context(k, s) for k, s in SECRETS.items())

    @trace
    def call_api(key: str, *, headers: dict) -> dict:  # arguments carry the secret
        return {"status": 200, "echo": key}

    @trace
    def use_key(kind: str, secret: str) -> str:
        if kind.startswith("pem") or kind.startswith("stripe"):
            raise PermissionError(f"rejected credential {secret}")  # an error carries it
        return f"ok: {secret}"  # a return value carries it

    p = profile("leaky", save=folder, tags={"deploy": "prod"})
    with p:
        env = read_env_file(".env")
        for kind, secret in SECRETS.items():
            # Self-identifying formats are passed bare; the few that are only secrets next to their name
            # (an AWS secret key is 40 random base64 characters) are passed as they appear in config.
            bare = in_context(kind, secret) if kind in CONTEXT_ONLY else secret
            call_api(bare, headers={"Authorization": f"Bearer {secret}", "x-api-key": secret})
            try:
                use_key(kind, bare)
            except PermissionError:
                pass
            with span("http", kind="tool", attributes={"request": in_context(kind, secret)}):
                pass
            record_llm_call(
                model="gpt-4o", provider="openai",
                messages=[{"role": "system", "content": "You are an ops agent."},
                          {"role": "user", "content": f"Deploy with {in_context(kind, secret)}"},
                          {"role": "tool", "tool_call_id": "c1", "content": env}],
                output=f"Using {bare} now.",
                usage={"input_tokens": 100, "output_tokens": 10},
                params={"api_key": bare},
            )
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "x"}], output="y",
                        error=f"401 Unauthorized for key {SECRETS['openai-legacy']}")
        # Through the LangChain integration: a tool's input and output, a chat model's prompt and reply.
        fetch_config.invoke({"name": SECRETS["github-classic-pat"]})
        EchoChatModel().invoke(f"deploy with {SECRETS['openai-project']} and {SECRETS['anthropic-api']}")
    return p


@lc_tool
def fetch_config(name: str) -> str:
    """Return the deployment configuration named ``name``."""
    return "\n".join(in_context(k, s) for k, s in SECRETS.items())


def test_no_secret_in_any_written_file(tmp_path):
    folder = tmp_path / "written"
    p = run_agent_leaking_everything(folder / "runs")
    run = p.run
    # The in-memory run is the user's own process memory: it still has the real values (the agent works).
    assert any(SECRETS["openai-legacy"] in json.dumps(s.to_dict(), default=str) for s in run.spans)
    # Streamed file, a whole-run save, and a save to an explicit path.
    save_run(run, folder / "saved")
    save_run(run, path=folder / "explicit" / "run.jsonl")
    loaded = load_run(run.path)
    assert loaded.complete and len(loaded.spans) == len(run.spans)
    # The LangChain spans carried secrets in memory too (so the check below is not vacuous).
    lc = [s for s in run.spans if s.name in ("fetch_config", "EchoChatModel")]
    assert len(lc) == 2 and all(SECRETS["github-classic-pat"] in json.dumps(s.to_dict(), default=str)
                                or SECRETS["openai-project"] in json.dumps(s.to_dict(), default=str) for s in lc)
    assert "[REDACTED:openai-key]" in run.path.read_text()
    # Not even the hash of a secret-bearing message is stored (messages are addressed by content hash).
    from tokprof.profiler.store import payload_id

    raw_ids = {payload_id(m) for sp in run.spans if sp.llm for m in sp.llm.messages
               if any(sec in json.dumps(m) for sec in SECRETS.values())}
    assert raw_ids and not any(i in run.path.read_text() for i in raw_ids)
    # A report rendered from the saved run (what `tokprof report` does), if the reports package can.
    try:
        from tokprof.reports.html import write_html
        from tokprof.reports.model import build_report

        write_html(build_report(loaded), folder / "report.html")
    except ImportError:  # pragma: no cover - reports not built in this checkout
        pass
    checked = assert_no_secret_in(folder)
    assert checked >= 3


def test_redaction_keeps_the_file_loadable_and_ids_stable(tmp_path):
    p = run_agent_leaking_everything(tmp_path)
    back = load_run(p.run.path)
    assert sorted(s.span_id for s in back.spans) == sorted(s.span_id for s in p.run.spans)
    llm = [s for s in back.llm_spans() if len(s.llm.messages) > 1 and "Deploy" in str(s.llm.messages[1]["content"])]
    assert len(llm) == len(SECRETS)
    assert sum(s.llm.usage.input_tokens for s in llm) == 100 * len(SECRETS)
    assert all("[REDACTED:" in s.llm.messages[1]["content"] for s in llm)
    assert all(s.llm.params["api_key"] == "[REDACTED:credential]" for s in llm)


def test_redaction_failure_fails_closed(tmp_path, monkeypatch, caplog):
    """If redaction itself breaks, the line is dropped (never written unredacted) and the agent runs."""
    _reset_internal_errors()
    redact.clear_patterns()  # with no user pattern, only lines with a marker go through redact_obj

    def broken(obj, _depth=0):
        raise RuntimeError("redactor bug")

    monkeypatch.setattr(redact, "redact_obj", broken)

    @trace
    def agent(x):
        return x * 2

    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("r", save=tmp_path) as run:
        assert agent(SECRETS["anthropic-api"]) == SECRETS["anthropic-api"] * 2
        assert agent(SECRETS["openai-legacy"]) == SECRETS["openai-legacy"] * 2
    text = run.path.read_text()
    assert SECRETS["anthropic-api"] not in text and SECRETS["openai-legacy"] not in text
    assert len([r for r in caplog.records if "internal error" in r.getMessage()]) == 1


# ---------------------------------------------------------------------------------------------------
# permissions
# ---------------------------------------------------------------------------------------------------
def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_run_files_and_created_folders_are_private(tmp_path):
    target = tmp_path / "a" / "b" / "runs"
    with profile("perm", save=target) as run:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], output="yo")
    assert mode(run.path) == 0o600
    for d in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(d) == 0o700, d
    saved = save_run(run, tmp_path / "c" / "d")
    assert mode(saved) == 0o600 and mode(tmp_path / "c") == 0o700 and mode(tmp_path / "c" / "d") == 0o700


def test_private_even_with_a_permissive_umask_and_an_existing_file(tmp_path):
    old = os.umask(0)
    try:
        with profile("umask", save=tmp_path / "runs") as run:
            pass
        existing = tmp_path / "x.jsonl"
        existing.write_text("old")
        os.chmod(existing, 0o666)
        save_run(run, path=existing)
    finally:
        os.umask(old)
    assert mode(run.path) == 0o600 and mode(tmp_path / "runs") == 0o700 and mode(existing) == 0o600


def test_existing_user_folders_are_not_chmodded(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with profile("keep", save=shared) as run:
        pass
    assert mode(shared) == 0o755 and mode(run.path) == 0o600


# ---------------------------------------------------------------------------------------------------
# payload capture off
# ---------------------------------------------------------------------------------------------------
SENTINEL = "PAYLOAD-SENTINEL-7f3a"


def agent_with_payloads() -> None:
    @trace
    def tool(query: str, *, limit: int = 3) -> str:
        return f"{SENTINEL} result for {query}"

    @trace
    def failing(q: str) -> None:
        raise ValueError(f"cannot parse {SENTINEL} {q}")

    tool(f"{SENTINEL} q", limit=5)
    try:
        failing("x")
    except ValueError:
        pass
    record_llm_call(model="gpt-4o", messages=[{"role": "system", "content": f"{SENTINEL} sys"},
                                              {"role": "user", "content": f"{SENTINEL} hi"}],
                    output=f"{SENTINEL} out", usage={"input_tokens": 40, "output_tokens": 7})
    lookup.invoke({"q": f"{SENTINEL} tool input"})  # a LangChain tool: input and output recorded by C's handler


@lc_tool
def lookup(q: str) -> str:
    """Look ``q`` up."""
    return f"{SENTINEL} tool output for {q}"


@pytest.mark.parametrize("how", ["argument", "env"])
def test_capture_off_records_no_payload(tmp_path, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("TOKPROF_CAPTURE", "0")
        p = profile("nocap", save=tmp_path)
    else:
        p = profile("nocap", save=tmp_path, capture=False)
    with p as run:
        agent_with_payloads()
    assert SENTINEL not in run.path.read_text()
    assert all(SENTINEL not in json.dumps(s.to_dict(), default=str) for s in run.spans)
    back = load_run(run.path)
    # The shape, timing, usage and error kinds are still there.
    assert sorted(s.name for s in back.spans) == sorted(["nocap", "tool", "failing", "gpt-4o", "lookup"])
    lc_tool_span = next(s for s in back.spans if s.name == "lookup")
    assert "langchain.run_id" in lc_tool_span.attributes  # metadata kept, payload dropped
    assert back.total_usage().input_tokens == 40 and back.total_usage().output_tokens == 7
    failing = next(s for s in back.spans if s.name == "failing")
    assert failing.status == "error" and failing.error == "ValueError"
    llm = back.llm_spans()[0]
    assert [m["role"] for m in llm.llm.messages] == ["system", "user"] and llm.llm.output is None
    assert llm.attributes["tokprof.payload"] == "not captured"


def test_capture_on_by_default_records_payloads(tmp_path):
    with profile("cap", save=tmp_path) as run:
        agent_with_payloads()
    text = run.path.read_text()
    assert text.count(SENTINEL) >= 8  # args, return, error, 2 messages, output, tool input and output


def test_report_of_a_live_run_has_no_secret(tmp_path):
    from tokprof.reports.html import write_html
    from tokprof.reports.model import build_report

    p = run_agent_leaking_everything(tmp_path / "runs")
    write_html(build_report(p.run), tmp_path / "live.html")
    text = (tmp_path / "live.html").read_text()
    leaked = [kind for kind, secret in SECRETS.items() if secret in text]
    assert not leaked  # (a list of kinds: pytest's diff of a large text would take minutes)


def test_otlp_export_has_no_secret(tmp_path):
    from tokprof.profiler.interchange.otlp import write_otlp

    p = run_agent_leaking_everything(tmp_path / "runs")
    out = write_otlp([p.run], tmp_path / "export" / "trace.json")
    text = out.read_text()
    leaked = [kind for kind, secret in SECRETS.items() if secret in text]
    assert not leaked


def test_real_agent_traffic_is_not_redacted(corpus):
    """False positives damage stored runs: every string of the real corpus (τ²-bench, τ-bench, SWE-agent;
    ~76,000 strings, ~8 MB) must come through unchanged."""
    import gzip

    strings: list[str] = []

    def walk(o: object) -> None:
        if isinstance(o, str):
            strings.append(o)
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for f in sorted(corpus.rglob("*.gz")):
        walk(json.loads(gzip.open(f).read()))
    assert len(strings) > 10_000
    changed = [s[:120] for s in strings if redact.redact_text(s) != s]
    assert changed == []


# ---------------------------------------------------------------------------------------------------
# issue #21 point 9: tool definitions, every writer, log lines; point 5: linear redaction
# ---------------------------------------------------------------------------------------------------
def test_tool_definitions_are_redacted_in_otlp_export(tmp_path):
    from tokprof.profiler.interchange.otlp import write_otlp

    tools = [{"type": "function", "function": {"name": f"t{i}", "description": f"calls with {in_context(k, s)}",
                                                "parameters": {"type": "object", "properties": {
                                                    "key": {"type": "string", "default":
                                                            in_context(k, s) if k in CONTEXT_ONLY else s}}}}}
             for i, (k, s) in enumerate(SECRETS.items())]
    with profile("tools", save=False) as run:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=tools, output="ok",
                        usage={"input_tokens": 1, "output_tokens": 1})
    text = write_otlp([run], tmp_path / "trace.json").read_text()
    assert not [k for k, s in SECRETS.items() if s in text]


def test_internal_error_log_lines_do_not_quote_content(caplog):
    from tokprof.profiler.hooks import internal_error

    _reset_internal_errors()
    secret = SECRETS["openai-project"]
    with caplog.at_level(logging.DEBUG, logger="tokprof"):
        internal_error("test: quoting", KeyError(f"the user's private prompt with {secret}"))
    assert "quoting" in caplog.text and "KeyError" in caplog.text
    assert secret not in caplog.text and "private prompt" not in caplog.text


def _quantifier_problems(pattern: str) -> list[str]:
    """Lazy quantifiers anywhere, and unbounded repeats nested in unbounded repeats (the shapes that
    backtrack super-linearly)."""
    try:
        import re._parser as sre_parse  # Python 3.11+
        from re._constants import MAX_REPEAT, MIN_REPEAT, MAXREPEAT, SUBPATTERN, BRANCH, ASSERT, ASSERT_NOT
    except ImportError:  # pragma: no cover
        import sre_parse  # type: ignore[no-redef]
        from sre_constants import MAX_REPEAT, MIN_REPEAT, MAXREPEAT, SUBPATTERN, BRANCH, ASSERT, ASSERT_NOT

    problems: list[str] = []

    def walk(items, inside_unbounded: bool) -> None:  # noqa: ANN001
        for op, av in items:
            if op is MIN_REPEAT:
                problems.append("lazy quantifier")
            if op in (MAX_REPEAT, MIN_REPEAT):
                lo, hi, body = av
                unbounded = hi == MAXREPEAT or hi > 1000
                if unbounded and inside_unbounded:
                    problems.append("unbounded repeat nested in an unbounded repeat")
                walk(body, inside_unbounded or (unbounded and _width(body) != 1))
            elif op is SUBPATTERN:
                walk(av[-1], inside_unbounded)
            elif op is BRANCH:
                for b in av[1]:
                    walk(b, inside_unbounded)
            elif op in (ASSERT, ASSERT_NOT):
                walk(av[1], inside_unbounded)

    def _width(body) -> int:  # noqa: ANN001
        lo, hi = body.getwidth()
        return hi if lo == hi else -1

    walk(sre_parse.parse(pattern), False)
    return problems


def test_redaction_patterns_have_no_lazy_or_nested_quantifiers():
    found = {kind: _quantifier_problems(p.pattern) for kind, p, *_ in redact._COMPILED}
    found["pem-begin"] = _quantifier_problems(redact._PEM_BEGIN.pattern)
    found["pem-end"] = _quantifier_problems(redact._PEM_END.pattern)
    found["pem-body"] = _quantifier_problems(redact._PEM_BODY.pattern)
    found.update({f"hint:{k}": _quantifier_problems(p.pattern) for k, p in redact._HINTS.items()})
    assert {k: v for k, v in found.items() if v} == {}
    # the checker itself catches the old PEM pattern's shape
    assert _quantifier_problems(r"-----BEGIN[A-Z ]*KEY-----(?:[\s\S]*?-----END)") == ["lazy quantifier"]
    assert _quantifier_problems(r"(a+)+b")


def test_pem_scanner_searches_for_END_at_most_once_per_key(monkeypatch):
    """Linear by construction: with 100,000 headers and no END, the END search runs once."""
    calls = []
    real = redact._PEM_END

    class Counting:
        def search(self, text, pos=0):  # noqa: ANN001, ANN202
            calls.append(pos)
            return real.search(text, pos)

    monkeypatch.setattr(redact, "_PEM_END", Counting())
    text = "-----BEGIN RSA PRIVATE KEY----- !" * 100_000
    out = redact.redact_text(text)
    assert len(calls) == 1 and out.count("[REDACTED:pem-private-key]") == 100_000


ADVERSARIAL_10MB = [
    ("pem-begin-no-end", "-----BEGIN RSA PRIVATE KEY-----\n!" * 330_000),
    ("bearer-no-end", "Bearer " + "a" * 10_000_000),
    ("credential-runs", ("password=" + "x" * 50 + " ") * 170_000),
    ("url-no-at", ("postgres://user:" + "p" * 100 + "/") * 95_000),
    ("zhipu-like-hex", ("0123456789abcdef" * 2 + ".") * 300_000),
    ("base64-starts", ("c2st" + "A" * 16 + " ") * 480_000),
]


@pytest.mark.parametrize("name,text", ADVERSARIAL_10MB, ids=[n for n, _ in ADVERSARIAL_10MB])
def test_redaction_of_10mb_adversarial_input_finishes(name, text):
    """Each input is ~10 MB built to make a backtracking pattern quadratic (the old PEM pattern took 72 s
    on 600 KB, so a super-linear pattern would stall the suite here rather than pass). No time is asserted:
    the linear-pattern lint above is the guard, and ``benchmarks/bench_redaction.py`` measures the speed."""
    out = redact.redact_text(text)
    assert isinstance(out, str) and len(out) >= len(text) // 2
