"""pytest plugin: token budgets and token-regression baselines for tests that run agents.

Registered through the ``pytest11`` entry point, so it loads in every pytest session where tokprof is
installed. It therefore imports only the standard library and pytest at import time, and does nothing
unless a test uses it (the ``tokprof`` fixture or the ``token_budget`` marker).

::
    def test_refund_agent(tokprof):            # the fixture profiles the test body...
        agent.invoke("refund order 42")
        assert tokprof.total_usage().input_tokens < 50_000   # ...and is the Run

    @pytest.mark.token_budget(max_input_tokens=20_000, max_cost_usd=0.05)
    def test_triage(): ...                     # the marker profiles the test too, and fails it if over

Options:

``--tokprof-baseline FILE``   if FILE does not exist, record every profiled test's usage into it at the
                              end of the session; if it exists, fail any profiled test whose total tokens
                              (input + output) grew by more than the tolerance over its recorded value.
``--tokprof-tolerance PCT``   allowed growth in percent (``10`` or ``10%``; default 10).
``--tokprof-update-baseline`` rewrite FILE with this session's numbers (after a deliberate change).

At the end of the session a table lists the usage of every profiled test (only if some test was profiled).
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tokprof.profiler import hooks, keys, profile
from tokprof.profiler.model import Span

BUDGET_KEYS = ("max_input_tokens", "max_output_tokens", "max_total_tokens", "max_cost_usd")
DEFAULT_TOLERANCE_PCT = 10.0
BASELINE_SCHEMA = 1


@dataclass
class TestUsage:
    """Token usage of one profiled test."""

    nodeid: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    llm_calls: int
    baseline_tokens: int | None = None
    status: str = "ok"
    """``ok``, ``over budget``, ``regressed``, ``new`` (not in the baseline) or ``recorded``."""

    __test__ = False  # not a test class, whatever its name

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_baseline(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.total_tokens, "llm_calls": self.llm_calls,
                "cost_usd": None if self.cost_usd is None else str(self.cost_usd)}


class _State:
    """Per-session state, kept in ``config.stash``."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        self.baseline_path: Path | None = Path(opt("tokprof_baseline")) if opt("tokprof_baseline") else None
        self.tolerance_pct = parse_tolerance(opt("tokprof_tolerance"))
        self.update = bool(opt("tokprof_update_baseline"))
        self.baseline: dict[str, dict[str, Any]] | None = None
        if self.baseline_path is not None and self.baseline_path.exists():
            self.baseline = load_baseline(self.baseline_path)
        self.results: dict[str, TestUsage] = {}

    @property
    def recording(self) -> bool:
        return self.baseline_path is not None and (self.baseline is None or self.update)


_STATE = pytest.StashKey[_State]()
_RUN = pytest.StashKey[Any]()


def parse_tolerance(value: Any) -> float:
    """``10``, ``"10"``, ``"10%"`` -> 10.0 (percent)."""
    if value is None:
        return DEFAULT_TOLERANCE_PCT
    text = str(value).strip().rstrip("%").strip()
    try:
        pct = float(text)
    except ValueError:
        raise pytest.UsageError(f"--tokprof-tolerance expects a percentage like 10 or 10%, got {value!r}") from None
    if pct < 0:
        raise pytest.UsageError(f"--tokprof-tolerance must be >= 0, got {value!r}")
    return pct


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        tests = data["tests"]
        if not isinstance(tests, dict):
            raise TypeError("'tests' is not an object")
        for nodeid, entry in tests.items():
            if not isinstance(entry, dict):
                raise TypeError(f"entry {nodeid!r} is not an object")
            for key in ("total_tokens", "input_tokens", "output_tokens"):
                v = entry.get(key, 0)
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise TypeError(f"entry {nodeid!r}: {key} {v!r} is not a token count")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise pytest.UsageError(
            f"{path}: not a tokprof baseline file ({exc}); delete it to record a new one") from None
    return tests


def baseline_key(nodeid: str) -> str:
    """The baseline's key for a test: its node id with secrets redacted (parametrised ids can hold the
    keys a test was given; the baseline file is committed to the repository)."""
    from tokprof.profiler.redact import redact_text

    return redact_text(nodeid)


def write_baseline(path: Path, results: dict[str, TestUsage], previous: dict[str, dict[str, Any]] | None) -> None:
    import os
    import secrets as _secrets

    tests = dict(previous or {})
    tests.update({baseline_key(nodeid): r.to_baseline() for nodeid, r in results.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"schema": BASELINE_SCHEMA, "tool": "tokprof", "tests": dict(sorted(tests.items()))},
                      indent=2) + "\n"
    # Atomic: a new file under a random name, then renamed over the old one; a full disk leaves the
    # previous baseline as it was.
    tmp = path.with_name(f".{path.name}.{_secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokprof", "tokprof token budgets and baselines")
    group.addoption("--tokprof-baseline", metavar="FILE", default=None,
                    help="record per-test token usage to FILE (if missing), else fail tests whose tokens grew "
                         "beyond --tokprof-tolerance")
    group.addoption("--tokprof-tolerance", metavar="PCT", default=None,
                    help=f"allowed token growth over the baseline, in percent (default {DEFAULT_TOLERANCE_PCT:g})")
    group.addoption("--tokprof-update-baseline", action="store_true", default=False,
                    help="rewrite the --tokprof-baseline file with this session's usage")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "token_budget(max_input_tokens=None, max_output_tokens=None, max_total_tokens=None, max_cost_usd=None, "
        "allow_no_calls=False): "
        "profile the test with tokprof and fail it if its LLM usage exceeds the budget",
    )
    config.stash[_STATE] = _State(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test with a budget is profiled even if it does not ask for the fixture.
    for item in items:
        marker = item.get_closest_marker("token_budget")
        if marker is not None:
            _check_marker(item.nodeid, marker)
            names = getattr(item, "fixturenames", None)
            if isinstance(names, list) and "tokprof" not in names:
                names.append("tokprof")


@pytest.fixture
def tokprof(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Profile the test body; the value is the :class:`tokprof.profiler.Run` being recorded.

    Code under test that opens its own ``profile()`` records into its own run; when that inner profile
    ends, a copy of its spans is grafted under this run's root, so the test's numbers include it."""
    hooks.on_profile_exit(_graft_nested)
    p = profile(request.node.nodeid, tags={"test": request.node.name}, kind="function",
                metadata={keys.SOURCE: "pytest", "nodeid": request.node.nodeid})
    run = p.__enter__()
    token = _TARGET.set((run, p.root.span_id if p.root is not None else None))
    request.node.stash[_RUN] = run
    try:
        yield run
    finally:
        _TARGET.reset(token)
        p.__exit__(None, None, None)


_TARGET: "contextvars.ContextVar[tuple[Any, str | None] | None]" = contextvars.ContextVar(
    "tokprof_pytest_target", default=None)


def _graft_nested(p: Any) -> None:
    """Profile exit hook: copy the spans of a profile that ran inside a profiled test into the test's run."""
    target = _TARGET.get()
    if target is None or p.run is target[0]:
        return
    import time

    run, root_id = target
    spans = list(p.run.spans)
    if p.root is not None and p.root.end_ns is None:  # exit hooks run before the inner root is closed
        spans.append(p.root)
    for s in spans:
        c = Span.from_dict(s.to_dict())
        c.run_id = run.run_id
        if c.end_ns is None:
            c.end_ns = time.perf_counter_ns()
        if c.parent_id is None:
            c.parent_id = root_id
            c.set_attribute("tokprof.nested_run", p.run.run_id)
        run.spans.append(c)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    except BaseException:
        # The test failed on its own: keep its usage for the table, add nothing to its failure.
        run = item.stash.get(_RUN, None)
        if run is not None:
            usage = _usage_of(item.nodeid, run)
            usage.status = "failed"
            item.config.stash[_STATE].results[item.nodeid] = usage
        raise
    run = item.stash.get(_RUN, None)
    if run is None:
        return result
    state = item.config.stash[_STATE]
    usage = _usage_of(item.nodeid, run)
    state.results[item.nodeid] = usage
    over = _budget_problems(item, usage)
    grew = _regression_problems(state, usage)
    if over or grew:
        head = (f"tokprof: {item.nodeid} exceeded its token budget" if over
                else f"tokprof: {item.nodeid} uses more tokens than its baseline")
        pytest.fail(_breakdown(head, over + grew, run), pytrace=False)
    return result


def _check_marker(nodeid: str, marker: pytest.Mark) -> None:
    """Reject a malformed budget at collection, before any test runs."""
    if marker.args:
        raise pytest.UsageError(f"{nodeid}: token_budget takes keyword arguments only: {', '.join(BUDGET_KEYS)}")
    flag = marker.kwargs.get("allow_no_calls", False)
    if not isinstance(flag, bool):
        raise pytest.UsageError(f"{nodeid}: token_budget allow_no_calls={flag!r} must be True or False")
    unknown = sorted(set(marker.kwargs) - set(BUDGET_KEYS) - {"allow_no_calls"})
    if unknown:
        raise pytest.UsageError(
            f"{nodeid}: unknown token_budget argument(s) {', '.join(unknown)}; expected {', '.join(BUDGET_KEYS)}")
    for key, value in marker.kwargs.items():
        if key == "allow_no_calls":
            continue
        try:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
                raise ValueError  # "100" or a list is a mistake, not a budget
            d = Decimal(str(value))
            if not d.is_finite() or d < 0:
                raise ValueError
        except (ArithmeticError, ValueError):
            raise pytest.UsageError(f"{nodeid}: token_budget {key}={value!r} is not a finite non-negative "
                                    "number") from None


def _usage_of(nodeid: str, run: Any) -> TestUsage:
    summary = run.summary(top=0, currency="USD")  # the budget (max_cost_usd) is in USD
    return TestUsage(nodeid, summary.tokens["input"], summary.tokens["output"], summary.cost, summary.llm_calls)


def _budget_problems(item: pytest.Item, usage: TestUsage) -> list[str]:
    marker = item.get_closest_marker("token_budget")
    if marker is None:
        return []
    problems = []
    if usage.llm_calls == 0 and not marker.kwargs.get("allow_no_calls", False):
        # A budget over a run that recorded nothing proves nothing: the client may not be instrumented.
        problems.append("0 LLM calls were recorded, so the budget checked nothing; if the test really makes no "
                        "model call, mark it token_budget(..., allow_no_calls=True), otherwise call the model "
                        "through an instrumented client (openai, anthropic, google-genai, litellm, LangChain)")
    for key, actual in (("max_input_tokens", usage.input_tokens), ("max_output_tokens", usage.output_tokens),
                        ("max_total_tokens", usage.total_tokens)):
        limit = marker.kwargs.get(key)
        if limit is not None and actual > Decimal(str(limit)):
            problems.append(f"{key[4:].replace('_', ' ')} {actual:,} > {key}={limit:,}")
    limit = marker.kwargs.get("max_cost_usd")
    if limit is not None:
        if usage.cost_usd is None:
            problems.append(f"cost unknown (no price for a model used) but max_cost_usd={limit} was set")
        elif usage.cost_usd > Decimal(str(limit)):
            # the budget is in USD by definition (max_cost_usd): its $ is the currency's, not a hard-coded default
            problems.append(f"cost ${usage.cost_usd:.6f} > max_cost_usd=${Decimal(str(limit))}")
    if problems:
        usage.status = "over budget"
    return problems


def _regression_problems(state: _State, usage: TestUsage) -> list[str]:
    if state.baseline is None:
        if state.recording:
            usage.status = "recorded"
        return []
    entry = state.baseline.get(baseline_key(usage.nodeid))
    if entry is None:
        usage.status = "new" if not state.update else "recorded"
        return []
    before = int(entry.get("total_tokens", entry.get("input_tokens", 0) + entry.get("output_tokens", 0)))
    usage.baseline_tokens = before
    if state.update:
        usage.status = "recorded"
        return []
    allowed = before * (1 + state.tolerance_pct / 100)
    if usage.total_tokens > allowed:
        usage.status = "regressed"
        growth = "from 0" if before == 0 else f"+{(usage.total_tokens - before) / before * 100:.1f}%"
        return [f"tokens grew {before:,} -> {usage.total_tokens:,} ({growth}; tolerance "
                f"{state.tolerance_pct:g}%, baseline {state.baseline_path})"]
    return []


def _breakdown(head: str, problems: list[str], run: Any) -> str:
    """The failure message: what was exceeded, then where the tokens went."""
    summary = run.summary(top=5)
    t = summary.tokens
    lines = [head + ":"]
    lines += [f"  - {p}" for p in problems]
    cost = "unknown" if summary.cost is None else f"{summary.cost:.6f} {summary.currency}"
    lines.append(f"  usage: {summary.llm_calls} LLM calls, input {t['input']:,} (cached {t['cache_read']:,}), "
                 f"output {t['output']:,}, cost {cost}")
    if summary.top_spans:
        lines.append("  top spans by own tokens:")
        for r in summary.top_spans:
            calls = f" x{r['calls']}" if r.get("calls", 1) > 1 else ""
            lines.append(f"    {r['excl_tokens']:>10,}  {r['kind']:<9} {r['name']}{calls}")
    return "\n".join(lines)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or state.baseline_path is None or not state.results or not state.recording:
        return
    write_baseline(state.baseline_path, state.results, state.baseline if state.update else None)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.results:
        return
    tr = terminalreporter
    tr.section("tokprof token usage")
    rows = sorted(state.results.values(), key=lambda r: -r.total_tokens)
    width = max(len("test"), *(len(r.nodeid) for r in rows))
    tr.write_line(f"{'test':<{width}}  {'calls':>5}  {'input':>10}  {'output':>8}  {'cost USD':>10}  "
                  f"{'baseline':>10}  {'change':>8}  status")
    for r in rows:
        cost = "?" if r.cost_usd is None else f"{r.cost_usd:.4f}"
        base = "" if r.baseline_tokens is None else f"{r.baseline_tokens:,}"
        change = "" if not r.baseline_tokens else f"{(r.total_tokens - r.baseline_tokens) / r.baseline_tokens:+.1%}"
        tr.write_line(f"{r.nodeid:<{width}}  {r.llm_calls:>5}  {r.input_tokens:>10,}  {r.output_tokens:>8,}  "
                      f"{cost:>10}  {base:>10}  {change:>8}  {r.status}")
    if state.baseline_path is not None and state.recording:
        tr.write_line(f"tokprof: baseline written to {state.baseline_path}")
