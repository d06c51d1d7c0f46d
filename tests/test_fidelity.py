"""The old bag-of-tokens retention (optimizers/bag_retention.py): which facts a call relied on, and which a rewrite lost."""

from __future__ import annotations

from compression_runs import run_from_transcript, transcript
from tokprof.optimizers.bag_retention import call_bag_retention as call_retention, fact_tokens, output_facts, run_bag_retention as run_retention, system_rules
from tokprof.profiler.model import LLMCall


def test_fact_tokens_take_ids_numbers_codes_names_not_plain_words():
    facts = fact_tokens("Hi! Reservation XEWRD9 for mia_li_3668 costs $121.50 on 2024-05-20; "
                        "ask Mia Li at mia.li@example.com, code 4A, seat 7.")
    for f in ("XEWRD9", "mia_li_3668", "121.50", "2024-05-20", "Mia", "Li", "mia.li@example.com", "4A"):
        assert f in facts
    for f in ("Hi", "Reservation", "costs", "ask", "7"):
        assert f not in facts


def test_tool_call_arguments_are_facts():
    out = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "book", "arguments": '{"cabin": "economy", "passengers": 2, "user_id": "u_1"}'}}]}
    assert {"economy", "2", "u_1"} <= set(output_facts(out))


def test_call_retention_counts_only_facts_that_were_in_the_input():
    call = LLMCall(model="gpt-4o", messages=[{"role": "user", "content": "check XEWRD9 and HAT001"}],
                   output={"role": "assistant", "content": "XEWRD9 uses HAT001 and HAT777."})
    r = call_retention(call, call)
    assert sorted(r.facts) == ["HAT001", "XEWRD9"]  # HAT777 was never in the input: not relied on
    assert r.share == 1.0 and r.lost == []
    new = LLMCall(model="gpt-4o", messages=[{"role": "user", "content": "check XEWRD9"}], output=call.output)
    r2 = call_retention(call, new)
    assert r2.lost == ["HAT001"] and r2.share == 0.5


def test_numbers_match_whole_tokens_only():
    call = LLMCall(messages=[{"role": "user", "content": "born 1992"}],
                   output={"role": "assistant", "content": "That is 92."})
    assert call_retention(call, call).facts == []


def test_system_rules_relied_on_are_traced_and_lost_when_pruned():
    system = ("# Policy\n\n- Travel insurance costs 30 dollars per passenger and enables full refund.\n\n"
              "- Each extra baggage is 50 dollars for every passenger on the reservation.")
    assert len(system_rules([{"role": "system", "content": system}])) == 2
    out = {"role": "assistant", "content": "Note: travel insurance costs 30 dollars per passenger."}
    call = LLMCall(messages=[{"role": "system", "content": system}, {"role": "user", "content": "insurance?"}],
                   output=out)
    r = call_retention(call, call)
    assert len(r.rules) == 1 and "insurance" in r.rules[0]
    pruned = LLMCall(messages=[{"role": "system", "content": "# Policy"}, {"role": "user", "content": "insurance?"}],
                     output=out)
    r2 = call_retention(call, pruned)
    assert r2.rules_lost and r2.share is not None and r2.share < 1


def test_run_retention_is_one_for_an_unchanged_run_and_none_without_references():
    run = run_from_transcript(transcript())
    assert run_retention(run, run.copy()) == 1.0
    bare = run_from_transcript([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}])
    assert run_retention(bare, bare.copy()) is None
