"""Each compression pass on hand-made runs with known answers: output, usage, retention, no peeking."""

from __future__ import annotations

import json

import pytest

import tokprof.optimizers.compression  # noqa: F401  (registers the passes)
from compression_runs import POLICY, cut_future, reservation, run_from_transcript, tool_call, tool_result, transcript
from tokprof.optimizers.base import PASSES, PassContext, make_pass
from tokprof.optimizers.pipeline import optimize
from tokprof.optimizers.compression.dedupe import dedupe_messages
from tokprof.optimizers.compression.history_budget import SUMMARY_PREFIX
from tokprof.optimizers.compression.mask import PLACEHOLDER_PREFIX
from tokprof.optimizers.compression.minify import head_tail, minify_message
from tokprof.optimizers.compression.relevance import BM25, RESTORED_PREFIX, split_sections
from tokprof.optimizers.fidelity import call_fidelity as call_retention, run_fidelity as run_retention

COMPRESSION = ["minify", "dedupe", "observation-mask", "history-budget", "relevance-prune"]
SMALL_BUDGET = {"history-budget": {"budget_tokens": 900, "keep_turns": 1, "cache_aware": False},
                "observation-mask": {"threshold_tokens": 100}}


def _apply(name, run, **opts):
    return make_pass(name, **opts).apply(run, PassContext())


def test_all_passes_registered():
    for name in COMPRESSION + ["task-decompose"]:
        make_pass(name)
        assert name in PASSES


# ---- minify -----------------------------------------------------------------------------------------
def test_minify_drops_whitespace_only():
    """Lossless: the compact output parses to exactly the original JSON value (empty fields included)."""
    m = tool_result("c1", reservation("XEWRD9", "mia_li_3668"))
    out = minify_message(m)
    assert json.loads(out["content"]) == json.loads(m["content"])
    assert " " not in out["content"].replace("2024-05-20", "")
    assert len(out["content"]) < len(m["content"])
    assert make_pass("minify").lossless is True


def test_minify_opt_in_options_are_lossy():
    m = tool_result("c1", reservation("XEWRD9", "mia_li_3668"))
    out = minify_message(m, tables=True, drop_empty=True)
    data = json.loads(out["content"])
    assert "note" not in out["content"] and "remarks" not in out["content"] and "extras" not in out["content"]
    assert data["flights"]["columns"] == ["flight_number", "date", "price"]  # a list of records as a table
    assert data["flights"]["rows"][0] == ["HAT001", "2024-05-20", 121]
    assert make_pass("minify", tables=True).lossless is False
    assert make_pass("minify", drop_empty=True).lossless is False


def test_every_pass_says_lossless_or_lossy():
    from tokprof.optimizers.base import available_passes

    flags = {n: make_pass(n).lossless for n in available_passes()}
    assert all(isinstance(v, bool) for v in flags.values())
    assert {n for n, v in flags.items() if v} == {"minify", "dedupe", "prompt-cache", "response-cache"}


def test_minify_no_longer_cuts_truncate_outputs_does():
    big = {"role": "tool", "tool_call_id": "c9", "content": json.dumps([{"order": f"#W{n:07d}", "total": n}
                                                                        for n in range(3000)], indent=2)}
    with pytest.warns(DeprecationWarning):
        p = make_pass("minify", max_tokens=200)
    out = p.compress([big]).messages[0]
    assert json.loads(out["content"]) == json.loads(big["content"])  # nothing cut
    cut = make_pass("truncate-outputs", max_tokens=200).compress([big]).messages[0]["content"]
    assert "truncate-outputs: about" in cut and len(cut) < len(big["content"]) / 10
    assert make_pass("truncate-outputs").lossless is False


def test_minify_tables_keep_every_value_and_key():
    from tokprof.optimizers.compression.minify import columnar

    data = {"payment_methods": {"credit_card_1": {"source": "credit_card", "last_four": "7447"},
                                "gift_card_2": {"source": "gift_card", "amount": 30}}}
    t = columnar(data)["payment_methods"]
    assert t["columns"] == ["(key)", "source", "last_four", "amount"]
    assert t["rows"] == [["credit_card_1", "credit_card", "7447", None], ["gift_card_2", "gift_card", None, 30]]
    mixed = [{"a": 1}, {"b": [1, 2]}]  # a nested list: not a table
    assert columnar(mixed) == mixed


def test_minify_head_tail_never_cuts_inside_an_identifier():
    text = " ".join(f"credit_card_{n:07d}" for n in range(2000))
    cut = head_tail(text, max_tokens=200)
    assert "tokens elided" in cut
    ids = set(text.split())
    for tok in cut.split():
        if tok.startswith("credit_card_"):
            assert tok in ids, tok


def test_minify_pass_keeps_every_fact():
    run = run_from_transcript(transcript())
    new, rows = _apply("minify", run)
    assert rows and all(r.fidelity == 1.0 for r in rows)
    assert run_retention(run, new) == 1.0
    assert all(r.input_tokens_after < r.input_tokens_before for r in rows)


# ---- observation-mask -------------------------------------------------------------------------------
def test_masked_output_keeps_its_ids_and_says_how_to_fetch_it():
    run = run_from_transcript(transcript())
    new, rows = _apply("observation-mask", run, threshold_tokens=100)
    last = new.llm_spans()[-1].llm
    masked = [m for m in last.messages if str(m.get("content") or "").startswith(PLACEHOLDER_PREFIX)]
    assert masked, "old tool outputs should be masked"
    first = masked[0]["content"]
    for ident in ("HAT002", "HAT008", "credit_card_4421486", "2024-05-20", "122"):
        assert ident in first
    # ids the rest of the prompt states anyway (HAT001 is in an assistant message) are not repeated,
    # but every id of the original output is still somewhere in the prompt
    from tokprof.optimizers.compression.common import message_text
    from tokprof.optimizers.fidelity import fact_tokens

    prompt = "\n".join(message_text(m) for m in last.messages)
    for ident in fact_tokens(reservation("XEWRD9", "mia_li_3668")):
        assert ident in prompt
    assert 'get_reservation_details({"reservation_id": "XEWRD9"}) again' in first
    # the last call cites HAT003's price (123) and K1NW8N's HAT008 price (208), both from masked outputs:
    # the ids survive in the placeholder, but only as bag tokens, not in their records (issue #16.3), so
    # the old bag measure says 1.00 and the context measure says the values are gone
    from tokprof.optimizers.bag_retention import call_bag_retention

    last_old, last_new = run.llm_spans()[-1], new.llm_spans()[-1]
    assert call_bag_retention(last_old, last_new).share == 1.0
    lost = call_retention(last_old, last_new)
    assert lost.share < 0.5 and {"123", "208"} <= set(lost.lost)
    assert run_retention(run, new) < 1.0


def test_mask_updates_usage_and_resets_cache_tokens():
    run = run_from_transcript(transcript())
    new, rows = _apply("observation-mask", run, threshold_tokens=100)
    by_id = new.by_id()
    for r in rows:
        u = by_id[r.span_id].llm.usage
        assert u.input_tokens == r.input_tokens_after < r.input_tokens_before
        assert u.source("input_tokens") in ("counted", "estimated")
        assert u.cache_read_tokens == 0
    # the input run is untouched
    assert all(s.llm.usage.source("input_tokens") == "provider" for s in run.llm_spans())


def test_mask_compacts_in_blocks_so_the_prefix_stays_stable():
    msgs = [{"role": "system", "content": POLICY}]
    for k in range(12):
        msgs += [{"role": "user", "content": f"look up R{k:05d}"}, tool_call(f"c{k}", "get_reservation_details",
                                                                           reservation_id=f"R{k:05d}"),
                 tool_result(f"c{k}", reservation(f"R{k:05d}", "mia_li_3668", 100 + k)),
                 {"role": "assistant", "content": f"R{k:05d} found."}]
    run = run_from_transcript(msgs)
    new, rows = _apply("observation-mask", run, threshold_tokens=1500, cache_aware=False)
    calls = [s.llm.messages for s in new.llm_spans()]
    breaks = sum(1 for a, b in zip(calls, calls[1:]) if b[:len(a)] != a)
    masking_calls = sum(1 for a, b in zip(calls, calls[1:])
                        if sum(PLACEHOLDER_PREFIX in str(m.get("content")) for m in b) >
                        sum(PLACEHOLDER_PREFIX in str(m.get("content")) for m in a))
    assert 0 < breaks == masking_calls < len(calls) // 3  # the prefix changes only when a block is masked


def test_cache_aware_mask_waits_longer_when_cache_writes_are_expensive():
    msgs = transcript()
    cheap = _apply("observation-mask", run_from_transcript(msgs), threshold_tokens=100)[1]
    dear = _apply("observation-mask", run_from_transcript(msgs, model="claude-sonnet-4-5", provider="anthropic"),
                  threshold_tokens=100)[1]
    assert len(dear) < len(cheap)


# ---- dedupe -----------------------------------------------------------------------------------------
def test_dedupe_keeps_the_first_copy_and_references_it():
    run = run_from_transcript(transcript())
    new, rows = _apply("dedupe", run)
    last = new.llm_spans()[-1].llm.messages
    refs = [m for m in last if str(m.get("content") or "").startswith("[identical to")]
    assert len(refs) == 1 and "message #3" in refs[0]["content"]
    assert last[3]["content"] == run.llm_spans()[-1].llm.messages[3]["content"]
    assert run_retention(run, new) == 1.0


def test_dedupe_never_merges_two_different_results():
    a = tool_result("c1", reservation("XEWRD9", "mia_li_3668", 120))
    b = tool_result("c2", reservation("XEWRD9", "mia_li_3668", 121))  # one price differs
    out, whole, paras = dedupe_messages([{"role": "user", "content": "x"}, a, b])
    assert whole == 0 and out[1] is a and out[2] is b


# ---- history-budget ---------------------------------------------------------------------------------
def test_history_budget_summarises_oldest_turns_with_estimated_size():
    run = run_from_transcript(transcript())
    new, rows = _apply("history-budget", run, **SMALL_BUDGET["history-budget"])
    assert rows
    last = new.llm_spans()[-1].llm
    assert last.messages[0]["role"] == "system"
    assert last.messages[1]["content"].startswith(SUMMARY_PREFIX)
    assert "XEWRD9" in last.messages[1]["content"] and "credit_card_4421486" in last.messages[1]["content"]
    assert last.usage.source("input_tokens") == "estimated"
    assert all(r.evidence == "estimated" for r in rows)
    assert len(last.messages) < len(run.llm_spans()[-1].llm.messages)


def test_history_budget_live_summarizer_is_used_and_facts_kept():
    seen = []

    def summarizer(msgs):
        seen.append(len(msgs))
        return "The user checked two reservations."

    p = make_pass("history-budget", budget_tokens=900, keep_turns=1, cache_aware=False, summarizer=summarizer)
    out = p.compress(transcript(), "gpt-4o").messages
    assert seen and "The user checked two reservations." in out[1]["content"]
    assert "XEWRD9" in out[1]["content"]


# ---- relevance-prune --------------------------------------------------------------------------------
def test_bm25_ranks_the_matching_section_first():
    secs = split_sections(POLICY)
    assert len(secs) == 4 and secs[2].startswith("## Cancel flight")
    sc = BM25(secs[1:]).scores("I want to cancel my reservation, the airline cancelled the flight")
    assert max(range(3), key=lambda i: sc[i]) == 1


def test_relevance_prune_stubs_irrelevant_sections_keeping_numbers_and_restores_on_need():
    msgs = [{"role": "system", "content": POLICY},
            {"role": "user", "content": "I want to cancel reservation XEWRD9, the airline cancelled the flight."},
            {"role": "assistant", "content": "Sure, let me check."},
            {"role": "user", "content": "Also, how much is extra baggage for a gold member?"},
            {"role": "assistant", "content": "..."}]
    p = make_pass("relevance-prune", keep_sections=1, keep_ratio=0.9)
    first = p.compress(msgs[:2], "gpt-4o").messages
    assert "## Book flight [section omitted" in first[0]["content"] and "30" in first[0]["content"]
    assert "within 24 hours" in first[0]["content"]  # the relevant section is kept whole
    later = p.compress(msgs[:4], "gpt-4o").messages
    assert later[0] == first[0]  # the system prompt (cached prefix) does not change
    restored = [m for m in later if str(m.get("content")).startswith(RESTORED_PREFIX)]
    assert restored and "## Baggage" in restored[0]["content"]


# ---- no pass peeks at the future --------------------------------------------------------------------
@pytest.mark.parametrize("name", COMPRESSION)
def test_cut_off_future_gives_the_same_output(name):
    run = run_from_transcript(transcript())
    opts = SMALL_BUDGET.get(name, {})
    full, _ = _apply(name, run, **opts)
    for keep in (2, 4, 5):
        cut, _ = _apply(name, cut_future(run, keep), **opts)
        for a, b in zip(full.llm_spans()[:keep], cut.llm_spans()):
            assert a.llm.messages == b.llm.messages
            assert a.llm.usage.input_tokens == b.llm.usage.input_tokens


@pytest.mark.parametrize("name", COMPRESSION)
def test_pass_ignores_outputs(name):
    """Changing every call's output (the future of each call) changes nothing in any call's rewrite."""
    run = run_from_transcript(transcript())
    other = run.copy()
    for s in other.llm_spans():
        s.llm.output = {"role": "assistant", "content": "something else entirely ZZZ999"}
    opts = SMALL_BUDGET.get(name, {})
    a, _ = _apply(name, run, **opts)
    b, _ = _apply(name, other, **opts)
    assert [s.llm.messages for s in a.llm_spans()] == [s.llm.messages for s in b.llm_spans()]


# ---- the pipeline -----------------------------------------------------------------------------------
def test_optimize_pipeline_reports_retention_and_prices_every_step():
    run = run_from_transcript(transcript())
    new, ledger = optimize(run, ["minify", "observation-mask", "dedupe"],
                           options={"observation-mask": {"threshold_tokens": 100}})
    assert [s.pass_name for s in ledger.steps] == ["minify", "observation-mask", "dedupe"]
    assert ledger.steps[0].fidelity == 1.0 and ledger.steps[0].lossless is True  # minify: whitespace only
    assert ledger.steps[1].fidelity < 1.0 and ledger.steps[1].lossless is False  # masking loses context
    assert ledger.final.input_tokens < ledger.baseline.input_tokens
    assert all(r.fidelity is not None for r in ledger.rows)
    if ledger.baseline.billed_cost is not None:
        assert ledger.final.billed_cost < ledger.baseline.billed_cost


def test_relevance_prune_never_takes_the_system_prompt_below_the_cache_minimum():
    filler = "- Rule text that is long enough to matter for the cache minimum of the provider. " * 48
    policy = POLICY.replace("## Baggage", f"## Loyalty\n\n{filler}\n\n## Baggage")
    msgs = [{"role": "system", "content": policy},
            {"role": "user", "content": "I want to cancel, the airline cancelled the flight."}]
    p = make_pass("relevance-prune", keep_sections=1, keep_ratio=0.9)
    assert p.compress(msgs, "gpt-4o").messages == msgs  # ~1,130 tokens -> under 1,024: no pruning
    assert p.compress(msgs, "unknown-model-without-cache").messages != msgs
