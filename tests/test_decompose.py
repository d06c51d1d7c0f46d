"""Task decomposition on a hand-made run with known subtasks and dependencies."""

from __future__ import annotations

import json

from compression_runs import POLICY, run_from_transcript, tool_call, tool_result, transcript
from tokprof.optimizers.base import PassContext, make_pass
from tokprof.optimizers.decompose import cheaper_model, decompose, is_mechanical


def _two_intents():
    """Look up a user (A), book a flight with the payment id found in A (B), ask baggage rules (C)."""
    return [
        {"role": "system", "content": POLICY},
        {"role": "user", "content": "I am mia_li_3668, what payment methods do I have?"},
        tool_call("c1", "get_user_details", user_id="mia_li_3668"),
        tool_result("c1", json.dumps({"user_id": "mia_li_3668", "payment_methods": ["credit_card_4421486"]})),
        {"role": "assistant", "content": "You have credit_card_4421486."},
        {"role": "user", "content": "Book flight HAT001 on 2024-05-20 with that card."},
        tool_call("c2", "book_reservation", flight="HAT001", date="2024-05-20", payment_id="credit_card_4421486"),
        tool_result("c2", json.dumps({"reservation_id": "NEW123", "status": "booked"})),
        {"role": "assistant", "content": "Booked: NEW123."},
        {"role": "user", "content": "How much is an extra bag for a gold member?"},
        {"role": "assistant", "content": "Each extra baggage is 50 dollars."},
    ]


def test_subtasks_dependencies_and_waves():
    rep = decompose(run_from_transcript(_two_intents()))
    assert len(rep.subtasks) == 2  # lookup / booking (+ the tool-less baggage question merged into it)
    assert rep.subtasks[0].tools == ["get_user_details"]
    assert rep.subtasks[1].tools == ["book_reservation"]
    assert rep.graph.has_edge(0, 1)
    assert "credit_card_4421486" in rep.graph.edges[0, 1]["facts"]
    assert rep.waves == [[0], [1]]
    d = rep.to_dict()
    json.dumps(d)
    assert d["evidence"] == "estimated" and d["reasoning"] and d["recommendation"]


def test_minimal_context_is_smaller_and_cheaper():
    rep = decompose(run_from_transcript(_two_intents()))
    for st in rep.subtasks:
        assert 0 < st.context_tokens <= st.input_tokens
        assert st.cost is not None and st.cost_as_subagent is not None and st.cost_as_subagent <= st.cost
    assert any("Baggage" in s or "Book" in s for st in rep.subtasks for s in st.sections)


def test_independent_subtasks_share_a_wave():
    msgs = [{"role": "system", "content": POLICY},
            {"role": "user", "content": "Check reservation AAA111."},
            tool_call("c1", "get_reservation_details", reservation_id="AAA111"),
            tool_result("c1", json.dumps({"reservation_id": "AAA111", "flight": "HAT010"})),
            {"role": "assistant", "content": "AAA111 flies HAT010."},
            {"role": "user", "content": "Now what is the status of flight HAT099 on 2024-05-21?"},
            tool_call("c2", "get_flight_status", flight_number="HAT099", date="2024-05-21"),
            tool_result("c2", json.dumps({"status": "on time"})),
            {"role": "assistant", "content": "HAT099 is on time."}]
    rep = decompose(run_from_transcript(msgs))
    assert len(rep.subtasks) == 2 and rep.graph.number_of_edges() == 0
    assert rep.waves == [[0, 1]]
    assert "concurrently" in rep.recommendation


def test_mechanical_calls_route_to_a_cheaper_model_of_the_same_provider():
    run = run_from_transcript(_two_intents())
    spans = run.llm_spans()
    assert is_mechanical(spans[0])  # get_user_details(user_id copied from the user's message)
    assert not is_mechanical(spans[1])  # a text answer
    assert cheaper_model("gpt-4o") == "gpt-4o-mini"
    assert cheaper_model("claude-sonnet-4-5") == "claude-haiku-4-5"
    assert cheaper_model("gpt-4o-mini") is None
    rep = decompose(run)
    assert {r.span_id for r in rep.routable} >= {spans[0].span_id}
    assert rep.routing_saving is not None and rep.routing_saving > 0
    assert rep.saving is not None and bool(rep)


def test_task_decompose_pass_changes_only_the_model_and_is_estimated():
    run = run_from_transcript(transcript())
    new, rows = make_pass("task-decompose").apply(run, PassContext())
    assert rows and all(r.evidence == "estimated" for r in rows)
    assert all("mechanical_in_hindsight" in r.details for r in rows)
    by_id = new.by_id()
    for r in rows:
        assert by_id[r.span_id].llm.model == "gpt-4o-mini"
        assert by_id[r.span_id].llm.messages == run.by_id()[r.span_id].llm.messages
    assert all(s.llm.model == "gpt-4o" for s in run.llm_spans())  # input untouched


def test_decompose_on_the_corpus(corpus):
    from tokprof.profiler.interchange import tau1
    from tokprof.profiler.interchange.base import read_text

    runs = tau1.import_text(read_text(corpus / "tau1" / "gpt-4o-airline.json.gz")).runs[:5]
    for run in runs:
        rep = decompose(run)
        assert rep.subtasks
        json.dumps(rep.to_dict())


def test_task_decompose_decides_without_the_output():
    run = run_from_transcript(_two_intents())
    other = run.copy()
    for sp in other.llm_spans():
        sp.llm.output = {"role": "assistant", "content": "a long considered answer " * 20}
    a = [r.span_id for r in make_pass("task-decompose").apply(run, PassContext())[1]]
    b = [r.span_id for r in make_pass("task-decompose").apply(other, PassContext())[1]]
    spans = run.llm_spans()
    # after "I am mia_li_3668, ..." and "Book flight HAT001 ...": new identifiers, a tool step follows
    assert a == b == [spans[0].span_id, spans[2].span_id]


def test_subtask_prices_are_converted_to_the_report_currency() -> None:
    from decimal import Decimal

    from tokprof.optimizers.billing import default_prices
    from tokprof.optimizers.decompose import _price
    from tokprof.profiler.providers.prices import convert

    rates = default_prices("qwen-max")
    assert rates is not None and rates.currency == "CNY"
    cny = _price("qwen-max", 1_000_000, 0, "CNY")
    assert cny == rates.for_prompt(1_000_000).input
    assert _price("qwen-max", 1_000_000, 0, "USD") == convert(cny, "CNY", "USD")  # not CNY labelled USD
    assert _price("gpt-4o", 1_000, 1_000, "USD") == (default_prices("gpt-4o").input + default_prices("gpt-4o").output) / Decimal(1000)


def test_subtask_costs_use_the_hour_each_call_started() -> None:
    """DeepSeek bills off-peak hours at half the peak price (its pricing page, footnote 2): a run whose calls
    started on a Saturday costs half as much, per subtask, as the same run on a Tuesday's peak hour."""
    import datetime as dt

    def at(when: dt.datetime):
        run = run_from_transcript(_two_intents(), model="deepseek-flash", provider="deepseek")
        ns = int(when.timestamp() * 1e9)
        for i, s in enumerate(run.spans):
            s.wall_start_ns = ns + i * 1_000_000
        return decompose(run)

    peak = at(dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.timezone.utc))  # Tuesday 02:30 UTC: peak
    off = at(dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc))  # Saturday: off-peak all day
    assert peak.subtasks and len(peak.subtasks) == len(off.subtasks)
    for p, o in zip(peak.subtasks, off.subtasks):
        assert p.cost is not None and p.cost > 0
        assert o.cost == p.cost / 2 and o.cost_as_subagent == p.cost_as_subagent / 2


def test_whatif_prices_the_target_by_the_hour_each_call_started() -> None:
    """Moving a run to DeepSeek: calls that started on a Saturday are billed at the off-peak half price."""
    import datetime as dt

    from tokprof.optimizers.whatif import whatif

    def at(when: dt.datetime):
        run = run_from_transcript(_two_intents())
        ns = int(when.timestamp() * 1e9)
        for i, s in enumerate(run.spans):
            s.wall_start_ns = ns + i * 1_000_000
        return whatif([run], "deepseek-flash")

    peak = at(dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.timezone.utc))
    off = at(dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc))
    assert peak.input_tokens == off.input_tokens > 0
    assert peak.cost.expected > 0 and off.cost.expected == peak.cost.expected / 2
