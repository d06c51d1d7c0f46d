"""Issue #16 point 1: one run, one cost. ``tokprof import``, ``tokprof show --json``, ``run.summary()``, the
``tokprof optimize --json`` baseline, the report's JSON renderer and ``tokprof compare`` (a run against itself)
give the same figure to the cent for every corpus file, and for a CNY-priced run in CNY.

The figure is what the run paid (:func:`tokprof.profiler.providers.as_paid.paid_bills`): recorded cost,
provider cache tokens, else the provider's automatic caching simulated on the unchanged run. Oracles: the
commands must agree with each other and with the summary; on files that record every call's cost the
figure must be the sum of the recorded costs (the file's own numbers, summed here independently); on the
simulated files it must lie inside the range and below the uncached list price (`as_recorded`).
"""

from __future__ import annotations

import gzip
import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main
from tokprof.profiler.interchange import import_file

CENT = Decimal("0.01")


def _cents(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v)).quantize(CENT)


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0, args
    return json.loads(capsys.readouterr().out)


def _figures(capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path, currency: str) -> dict[str, Any]:
    """The cost of ``trace``'s runs as each command reports it (unquantized), plus per-run show/summary."""
    runs_dir, opt_dir = tmp / "runs", tmp / "optimized"
    cur = ["--currency", currency]
    out: dict[str, Any] = {}
    imp = _cli_json(capsys, "import", str(trace), "--out", str(runs_dir), "--json", *cur)
    out["import"] = imp["cost"]["amount"]
    out["import_label"] = imp["cost"]["label"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown-model warnings: those calls are unpriced
        runs = list(import_file(trace).runs)
    summaries = {r.run_id: r.summary(top=0, currency=currency) for r in runs}
    known = [s.cost for s in summaries.values() if s.cost is not None]
    out["summary"] = sum(known, Decimal(0)) if known else None
    shows: dict[str, Any] = {}
    files = sorted(runs_dir.glob("*.jsonl"))
    # `show` is the summary plus the tree: every run of a small file, every 8th of τ-bench's 200 (slow here)
    for f in files if len(files) <= 60 else files[::8]:
        doc = _cli_json(capsys, "show", str(f), "--json", *cur)
        shows[doc["run_id"]] = doc["cost"]
    assert set(shows) <= set(summaries) and len(shows) >= min(len(summaries), 25)
    for run_id, cost in shows.items():  # run by run, show is the summary
        s = summaries[run_id]
        assert _cents(cost["amount"]) == _cents(s.cost), run_id
        assert cost["label"] == s.cost_label and cost["label"], run_id
    # the file total as show gives it: each shown run's figure, the summary's for the runs not shown
    amounts = [shows[r]["amount"] if r in shows else summaries[r].cost for r in summaries]
    shown = [Decimal(str(a)) for a in amounts if a is not None]
    out["show"] = sum(shown, Decimal(0)) if shown else None
    out["show_labels"] = {c["label"] for c in shows.values()}
    opt = _cli_json(capsys, "optimize", str(trace), "--passes", "", "--json", "--out", str(opt_dir), *cur)
    out["optimize"] = opt["totals"]["steps"][0]["billed_cost"]
    out["optimize_label"] = opt["totals"]["baseline_label"]
    rep = _cli_json(capsys, "report", str(trace), "--json", *cur)
    out["report"] = rep["headline"]["cost"]["before"]
    cmp = _cli_json(capsys, "compare", str(trace), str(trace), "--json", *cur)
    out["compare_before"] = cmp["headline"]["cost"]["before"]
    out["compare_after"] = cmp["headline"]["cost"]["after"]
    out["summaries"] = summaries
    out["runs"] = runs
    return out


COMMANDS = ("import", "summary", "show", "optimize", "report", "compare_before", "compare_after")


def _assert_agree(fig: dict[str, Any], name: str) -> Decimal | None:
    cents = {k: _cents(fig[k]) for k in COMMANDS}
    assert len(set(cents.values())) == 1, (name, cents)
    # the label is the same words wherever it is printed
    assert fig["import_label"] == fig["optimize_label"], name
    return cents["import"]


def _recorded_total(runs: list[Any]) -> Decimal | None:
    """The file's own costs, summed here (None unless every call recorded one)."""
    total = Decimal(0)
    for r in runs:
        for s in r.llm_spans():
            c = s.llm.cost
            if c is None or c.source != "recorded" or c.amount is None:
                return None
            total += c.amount
    return total


CORPUS_FILES = ("tau1/gpt-4o-airline.json.gz", "swe-agent/ctf_i_got_id_demo.traj.gz",
                "swe-agent/marshmallow-1867_function_calling.traj.gz", "tau2/claude-sonnet-4-5_*.json.gz",
                "tau2/gpt-oss-120b_*.json.gz", "tau2/*_grok3_*.json.gz", "tau2/*_o3_*.json.gz",
                "tau2/*_v2_gpt54.json.gz", "tau2/*_v2_sonnet46.json.gz", "tau2/toolorchestra_*.json.gz")


def test_every_corpus_file_is_listed(corpus: Path) -> None:
    """The parametrised test below covers every file of the corpus (a new file must be added there)."""
    listed = {p for pattern in CORPUS_FILES for p in corpus.glob(pattern)}
    assert listed == set(corpus.rglob("*.gz")) and len(listed) == len(CORPUS_FILES)


@pytest.mark.parametrize("pattern", CORPUS_FILES)
def test_every_command_gives_the_same_cost_to_the_cent(pattern: str, corpus: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (trace,) = corpus.glob(pattern)
    fig = _figures(capsys, trace, tmp_path, "USD")
    agreed = _assert_agree(fig, trace.name)
    recorded = _recorded_total(fig["runs"])
    summaries = fig["summaries"].values()
    if recorded is not None:  # every call recorded its cost: that is what was paid, exactly
        assert _cents(recorded) == agreed
        assert fig["show_labels"] == {"recorded cost " + f"{s.llm_calls} call{'s' if s.llm_calls != 1 else ''}"
                                      for s in summaries}
    simulated = [s for s in summaries if "simulated automatic caching" in s.cost_label]
    for s in simulated:
        # provider automatic caching simulated: a best-worst range that holds the expected bill, never above
        # the same calls with no caching simulated
        rng = s.cost_range
        assert rng is not None and rng.low <= s.cost <= rng.high and s.cost <= s.as_recorded
    if not simulated:  # nothing simulated: the figure is the calls' own costs as recorded / listed
        assert all(s.cost == s.as_recorded and (s.cost_range is None or s.cost_range.is_point)
                   for s in summaries), trace.name
    if agreed is None:  # SWE-agent demonstrations name no model: unknown everywhere, never zero
        assert all(s.cost is None and s.unpriced_calls for s in summaries)
    EXPECTED_BASES[pattern](fig["show_labels"])


def _only(*bases: str) -> Any:
    """The calls of the file's runs are known by these bases, and by no other."""
    def check(labels: set[str]) -> None:
        seen = {part.rsplit(" ", 2)[0] for label in labels for part in label.split(", ")}
        assert seen == set(bases), labels
    return check


EXPECTED_BASES = {
    "tau1/gpt-4o-airline.json.gz": _only("simulated automatic caching"),  # no usage, no costs: OpenAI caching
    "swe-agent/ctf_i_got_id_demo.traj.gz": _only("uncached"),  # no model: unpriced
    "swe-agent/marshmallow-1867_function_calling.traj.gz": _only("uncached"),
    "tau2/claude-sonnet-4-5_*.json.gz": _only("recorded cost"),
    "tau2/gpt-oss-120b_*.json.gz": _only("recorded cost", "uncached"),  # agent on a third-party host: no rule
    "tau2/*_grok3_*.json.gz": _only("recorded cost"),
    "tau2/*_o3_*.json.gz": _only("recorded cost"),
    "tau2/*_v2_gpt54.json.gz": _only("recorded cost"),
    "tau2/*_v2_sonnet46.json.gz": _only("recorded cost"),
    "tau2/toolorchestra_*.json.gz": _only("simulated automatic caching"),  # gpt-4.1(-mini): no costs recorded
}


# ---------------------------------------------------------------------------------------------------
# a CNY-priced run (Qwen, whose implicit cache is automatic), in CNY
# ---------------------------------------------------------------------------------------------------
POLICY = " ".join(f"Rule {i}: answer the customer politely and cite order numbers." for i in range(120))


def _qwen_log(path: Path) -> Path:
    """Two conversations on qwen-plus, logged as chat-completions request/response pairs; the provider
    reported prompt and completion tokens but no cached tokens, so the cache is simulated."""
    lines = []
    for conv in ("a", "b"):
        messages: list[dict[str, Any]] = [{"role": "system", "content": POLICY}]
        for turn in range(4):
            messages.append({"role": "user", "content": f"conversation {conv}, question {turn}: where is my order?"})
            reply = f"Your order {conv}-{turn} ships tomorrow."
            lines.append({"run_id": f"qwen-{conv}", "timestamp": 1_760_000_000 + 60 * turn + (0 if conv == "a" else 7),
                          "request": {"model": "qwen-plus", "messages": list(messages)},
                          "response": {"model": "qwen-plus", "choices": [{"message": {"role": "assistant",
                                                                                      "content": reply}}],
                                       "usage": {"prompt_tokens": 1500 + 40 * turn, "completion_tokens": 12}}})
            messages.append({"role": "assistant", "content": reply})
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_a_cny_run_agrees_in_cny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _qwen_log(tmp_path / "qwen.jsonl.gz")
    fig = _figures(capsys, trace, tmp_path, "CNY")
    agreed = _assert_agree(fig, trace.name)
    summaries = list(fig["summaries"].values())
    assert len(summaries) == 2 and all(s.currency == "CNY" for s in summaries)
    assert fig["show_labels"] == {"simulated automatic caching 4 calls"}
    # hand arithmetic at qwen-plus list prices (CNY per 1M: input 0.8, output 2): no hits is the worst case
    list_price = sum((Decimal(1500 + 40 * t) * Decimal("0.8") + 12 * Decimal(2) for t in range(4)),
                     Decimal(0)) * 2 / Decimal(1_000_000)
    for s in summaries:
        assert s.cost_range is not None and s.cost_range.by_scenario[2] == list_price / 2
        assert s.cost < list_price / 2  # the policy prefix (>= 256 tokens) hits Qwen's implicit cache
    assert agreed == _cents(sum((s.cost for s in summaries), Decimal(0)))


# ---------------------------------------------------------------------------------------------------
# the demo: its "before" is what `show` gives for the demo's baseline run
# ---------------------------------------------------------------------------------------------------
def test_demo_before_is_show_of_its_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tokprof import demo

    result = demo.run_demo(None, optimize=False, directory=tmp_path / "runs")
    assert result.baseline.path is not None
    shown = _cli_json(capsys, "show", str(result.baseline.path), "--json")["cost"]
    opt = _cli_json(capsys, "optimize", str(result.baseline.path), "--passes", "", "--json",
                    "--out", str(tmp_path / "opt"))["totals"]
    before = result.headline()["baseline"]
    assert Decimal(shown["amount"]) == result.before.cost == Decimal(before["cost"])
    assert _cents(opt["steps"][0]["billed_cost"]) == _cents(result.before.cost)
    # the scripted Anthropic stand-in reports its cache tokens (none: the baseline marks no prefix)
    assert shown["label"] == before["cost_basis"] == f"provider cache tokens {result.before.llm_calls} calls"
    assert result.before.cache_read_tokens == 0


def test_import_without_currency_uses_the_runs_own(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`import` without --currency totals in the runs' own currency, as `show` does (it used to say USD)."""
    monkeypatch.delenv("TOKPROF_CURRENCY", raising=False)
    trace = _qwen_log(tmp_path / "qwen.jsonl.gz")
    imp = _cli_json(capsys, "import", str(trace), "--out", str(tmp_path / "runs"), "--json")
    assert imp["cost"]["currency"] == "CNY"
    shows = [_cli_json(capsys, "show", str(f), "--json") for f in sorted((tmp_path / "runs").glob("*.jsonl"))]
    assert {s["cost"]["currency"] for s in shows} == {"CNY"}
    assert _cents(imp["cost"]["amount"]) == _cents(sum(Decimal(str(s["cost"]["amount"])) for s in shows))
    usd = _cli_json(capsys, "import", str(trace), "--no-save", "--json", "--currency", "USD")
    assert usd["cost"]["currency"] == "USD"
