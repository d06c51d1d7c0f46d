"""Live optimization (`profile(optimize=[...])`) and the demo's scripted provider, on real LangChain objects."""

from __future__ import annotations

import json

import pytest
from langchain_core.globals import get_llm_cache
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from tokprof import profile
from tokprof.demo import untable
from tokprof.optimizers.base import PassContext, make_pass
from tokprof.optimizers.live import DEFAULT_LIVE_PASSES, LIVE_PASS_OPTIONS, LiveSession, current_session
from tokprof.optimizers.live.langchain import rewrite_messages, to_dicts
from tokprof.profiler.model import LLMCall, Run, Span
from tokprof.profiler.providers.tokenizers import tokenizer_for
from tokprof.scripted_model import ScriptedChatModel, has_breakpoint, message_text

BIG = json.dumps({"rows": [{"id": i, "name": f"item {i}", "note": "x" * 20} for i in range(30)]}, indent=2)


def echo_model(**kwargs) -> ScriptedChatModel:  # noqa: ANN003
    """A model that answers how many messages and characters it received (so tests see the transforms)."""
    def policy(messages):  # noqa: ANN001, ANN202
        return AIMessage(content=f"{len(messages)} messages, {sum(len(message_text(m)) for m in messages)} chars")
    return ScriptedChatModel(policy=policy, **kwargs)


def history() -> list:
    tc = lambda i, name: AIMessage(content="", tool_calls=[{"name": name, "args": {"q": 1}, "id": f"c{i}"}])  # noqa: E731
    return [SystemMessage("You are helpful." * 20), HumanMessage("go"),
            tc(1, "big"), ToolMessage(BIG, tool_call_id="c1"),
            tc(2, "big"), ToolMessage(BIG, tool_call_id="c2"),
            tc(3, "other"), ToolMessage("short", tool_call_id="c3"),
            tc(4, "other2"), ToolMessage(json.dumps({"a": [1, 2, 3]}, indent=2) + " " * 300, tool_call_id="c4"),
            tc(5, "other3"), ToolMessage("y" * 400, tool_call_id="c5")]


MODEL = "claude-sonnet-4-5"


def run_passes(passes: list[str], msgs: list, session: LiveSession | None = None) -> list:
    """``msgs`` as a live block of ``passes`` would send them to the demo's model."""
    return rewrite_messages(session or LiveSession.open(passes), list(msgs), MODEL)[0]


def test_each_live_pass_is_the_simulated_pass() -> None:
    msgs = history()
    dicts = to_dicts(msgs)
    for name in ("minify", "dedupe", "observation-mask"):
        live = to_dicts(run_passes([name], msgs))
        opts = LIVE_PASS_OPTIONS.get(name, {})
        assert live == make_pass(name, **opts).compress(dicts, MODEL).messages, name
    out = run_passes(["dedupe"], msgs)
    assert message_text(out[5]).startswith("[identical to the big") and message_text(out[3]) == BIG
    out = run_passes(["minify"], msgs)
    assert untable(json.loads(message_text(out[3]))) == json.loads(BIG) and len(message_text(out[3])) < len(BIG)
    assert message_text(out[7]) == "short"
    assert msgs[0].content == "You are helpful." * 20  # inputs untouched
    assert all(type(a) is type(b) for a, b in zip(msgs, out)) and out[2] is msgs[2]


def test_live_prompt_cache_places_exactly_the_planned_breakpoints() -> None:
    """A growing conversation sent through one live block: each request's markers are where the simulated
    ``prompt-cache`` pass plans them on the recorded run of the same requests."""
    session = LiveSession.open(["prompt-cache"])
    convo, sent = history(), []
    for turn in range(4):
        out = run_passes(["prompt-cache"], convo, session)
        sent.append([i for i, m in enumerate(out) if has_breakpoint(m)])
        convo = convo + [AIMessage(f"answer {turn}"), HumanMessage(f"and then {turn}?")]
    assert sent[0] == [0, len(history()) - 1]  # system prompt end + the prompt's end (first call)
    run = Run(name="replay")
    convo = history()
    for turn in range(4):
        s = Span(f"s{turn}", None, run.run_id, "llm", "call", turn, 10**18 + turn * 10**9, turn + 1, "ok", None,
                 None, None, LLMCall(provider="anthropic", model=MODEL, messages=to_dicts(convo)))
        run.spans.append(s)
        convo = convo + [AIMessage(f"answer {turn}"), HumanMessage(f"and then {turn}?")]
    planned, _ = make_pass("prompt-cache").apply(run, PassContext())
    plans = [(s.attributes or {}).get("billing.plan", {}).get("breakpoints", []) for s in planned.llm_spans()]
    assert sent == plans
    assert session.stats["prompt-cache"]["breakpoints"] == sum(map(len, plans))


def test_a_failing_pass_is_skipped_and_the_others_still_act(monkeypatch: pytest.MonkeyPatch) -> None:
    session = LiveSession.open(["minify", "dedupe"])

    def boom(messages, model=None):  # noqa: ANN001, ANN202
        raise RuntimeError("bug in a pass")

    monkeypatch.setattr(session.objects["minify"], "compress", boom)
    out = run_passes(["minify", "dedupe"], history(), session)
    assert message_text(out[3]) == BIG  # minify failed: untouched
    assert message_text(out[5]).startswith("[identical to the big")  # dedupe still acted


def test_default_live_set_is_lossless_and_declared_by_the_passes() -> None:
    # minify and dedupe are lossless but changed a real model's answers (bench_live_real): named explicitly
    assert DEFAULT_LIVE_PASSES == ("response-cache", "prompt-cache")
    assert all(make_pass(n).lossless for n in DEFAULT_LIVE_PASSES)
    assert not any(make_pass(n).lossless for n in ("truncate-outputs", "observation-mask"))
    with profile("live", optimize=["default"]) as run:
        pass
    assert run.metadata["live_passes"] == list(DEFAULT_LIVE_PASSES)
    with profile("none", optimize=None) as run:
        assert current_session() is None
    assert "live_passes" not in run.metadata and "live_passes_unavailable" not in run.metadata


def test_each_request_records_what_each_pass_did() -> None:
    """Per-pass token deltas on each request's span, checked against the tokens the provider reported for
    the same request sent with and without the pass."""
    msgs = history()
    with profile("before") as before:
        echo_model().invoke(msgs)
    with profile("after", optimize=["dedupe", "prompt-cache"]) as after:
        echo_model().invoke(msgs)
    (b,), (a,) = before.llm_spans(), after.llm_spans()
    deltas = a.attributes["tokprof.live_deltas"]
    assert deltas["dedupe"]["tokens_before"] == b.llm.usage.input_tokens
    assert deltas["dedupe"]["tokens_after"] == a.llm.usage.input_tokens < b.llm.usage.input_tokens
    assert deltas["dedupe"]["source"] == tokenizer_for(MODEL).source  # Claude's tokenizer is not public: estimated
    assert deltas["prompt-cache"]["breakpoints"] == [0, len(msgs) - 1]
    stats = after.metadata["live_stats"]
    assert stats["dedupe"]["tokens_removed"] == b.llm.usage.input_tokens - a.llm.usage.input_tokens


def test_profile_optimize_applies_and_restores() -> None:
    model = echo_model()
    generate, cache = BaseChatModel.generate, get_llm_cache()
    msgs = history()
    plain = model.invoke(msgs).content
    with profile("live", optimize=["minify", "response-cache", "no-such-pass"]) as run:
        assert BaseChatModel.generate is not generate
        first = model.invoke(msgs)
        second = model.invoke(msgs)
    assert BaseChatModel.generate is generate and get_llm_cache() is cache
    assert run.metadata["live_passes"] == ["response-cache", "minify"]
    assert run.metadata["live_passes_unavailable"] == ["no-such-pass"]
    assert first.content != plain and first.content == second.content  # the model saw minified tool outputs
    assert len(model.requests) == 2  # the plain call and the first optimized one; the second was a cache hit
    assert second.usage_metadata["input_tokens"] == 0
    assert run.metadata["live_stats"]["response-cache"]["hits"] == 1
    assert model.invoke(msgs).content == plain  # outside the block: untouched again
    llm = run.llm_spans()
    assert len(llm) == 2 and llm[1].llm.usage.input_tokens == 0
    assert llm[0].llm.usage.input_tokens == first.usage_metadata["input_tokens"] > 0
    assert all(len(m["content"]) < len(BIG) for m in llm[0].llm.messages if m.get("role") == "tool")


def test_no_optimize_means_no_live_session() -> None:
    generate = BaseChatModel.generate
    with profile("plain") as run:
        assert current_session() is None and BaseChatModel.generate is generate
    assert "live_passes" not in run.metadata


def test_a_failing_transform_never_breaks_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("bug in a pass")

    monkeypatch.setattr(LiveSession, "rewrite", boom)
    model = echo_model()
    msgs = history()
    with profile("live", optimize=["minify"]):
        out = model.invoke(msgs)
    assert out.content == model.policy(msgs).content  # sent unchanged


def test_scripted_provider_prompt_cache() -> None:
    model = echo_model(min_cache_tokens=100)
    session = LiveSession.open(["prompt-cache"])
    msgs = run_passes(["prompt-cache"], history(), session)
    u1 = model.invoke(msgs).usage_metadata
    assert u1["input_token_details"] == {"cache_read": 0, "cache_creation": u1["input_tokens"] - 3}
    # next turn: one more message; the previous prefix is read back, only the new message is written
    longer = run_passes(["prompt-cache"], history() + [HumanMessage("and then?")], session)
    u2 = model.invoke(longer).usage_metadata
    assert u2["input_token_details"]["cache_read"] == u1["input_token_details"]["cache_creation"]
    assert 0 < u2["input_token_details"]["cache_creation"] < 20
    # without markers nothing is cached
    u3 = echo_model().invoke(history()).usage_metadata
    assert u3["input_token_details"] == {"cache_read": 0, "cache_creation": 0}
    assert u3["input_tokens"] == u1["input_tokens"]  # markers are not tokens


def test_response_cache_serves_only_deterministic_requests() -> None:
    model = echo_model(temperature=0.7)
    with profile("live", optimize=["response-cache"]) as run:
        model.invoke(history())
        model.invoke(history())
    assert len(model.requests) == 2  # sampled at temperature 0.7: never served from the cache
    assert "response-cache" not in run.metadata["live_stats"]


def test_response_cache_is_empty_at_the_start_of_each_block() -> None:
    model = echo_model()
    for _ in range(2):
        with profile("live", optimize=["response-cache"]):
            model.invoke(history())
    assert len(model.requests) == 2  # a second block does not inherit the first one's answers


def test_instrumented_openai_client_is_optimized_live(llm_server) -> None:  # noqa: ANN001
    openai = pytest.importorskip("openai")
    pytest.importorskip("tokprof.optimizers.compression.minify")
    from tokprof.profiler.integrations import uninstrument

    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "list items"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "items", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": BIG}]
    try:
        with profile("sdk", instrument=["openai"], optimize=["response-cache", "minify"]) as run:
            first = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
            second = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
            client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0.8)
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
    finally:
        uninstrument("openai")
    # answered from the block's cache: the same answer, its usage zero and labelled as served (issue #21)
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.tokprof_served_by == "tokprof-live response-cache" and second.usage.prompt_tokens == 0
    assert second.tokprof_cached_usage["prompt_tokens"] == first.usage.prompt_tokens
    bodies = [r.body for r in llm_server.requests]
    assert len(bodies) == 3  # first, the sampled one, and the one after the block
    sent = bodies[0]["messages"][-1]["content"]
    assert untable(json.loads(sent)) == json.loads(BIG) and len(sent) < len(BIG)
    assert bodies[2]["messages"][-1]["content"] == BIG  # outside the block: untouched
    assert run.metadata["live_stats"]["response-cache"]["hits"] == 1
    a, b, _c = run.llm_spans()
    assert b.attributes["served_by"] == "tokprof-live" and b.llm.usage.input_tokens == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's model-deprecation notice
def test_instrumented_anthropic_client_gets_cache_breakpoints(llm_server) -> None:  # noqa: ANN001
    anthropic = pytest.importorskip("anthropic")
    from tokprof.profiler.integrations import uninstrument

    client = anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="test", max_retries=0)
    try:
        with profile("sdk", instrument=["anthropic"], optimize=["prompt-cache"]) as run:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=50, system="You are terse.",
                                   messages=[{"role": "user", "content": "hello"}])
    finally:
        uninstrument("anthropic")
    body = llm_server.requests[0].body
    assert body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "hello",
                                                "cache_control": {"type": "ephemeral"}}]
    assert run.metadata["live_passes"] == ["prompt-cache"]


def test_the_scripted_model_reads_minified_tables() -> None:
    data = {"events": [{"date": "d1", "event": "picked up", "where": {"city": "Reno"}},
                       {"date": "d2", "event": "delayed", "where": {"city": "Cheyenne"}}],
            "cards": {"visa": {"last4": "1"}, "amex": {"last4": "2"}}, "n": 3}
    table = {"events": {"columns": ["date", "event", "where.city"],
                        "rows": [["d1", "picked up", "Reno"], ["d2", "delayed", "Cheyenne"]]},
             "cards": {"columns": ["(key)", "last4"], "rows": [["visa", "1"], ["amex", "2"]]}, "n": 3}
    assert untable(table) == data
    assert untable(data) == data
    try:
        from tokprof.optimizers.compression.minify import minify_json_text
    except ImportError:
        return
    assert untable(json.loads(minify_json_text(json.dumps(data)))) == data


def test_the_scripted_model_finds_orders_in_any_shape() -> None:
    from tokprof.demo import _order_containing

    orders = [{"order_id": "O-1", "status": "delivered", "sku": "AUD-ANC-700"},
              {"order_id": "O-2", "status": "in_transit", "sku": "HOM-KET-17"}]
    pretty = json.dumps({"customer_id": "C-1", "orders": orders}, indent=2)
    tabled = json.dumps({"customer_id": "C-1", "orders": {"columns": ["order_id", "status", "sku"],
                                                         "rows": [list(o.values()) for o in orders]}})
    cut = pretty[:pretty.rindex('"sku"')] + "\n…[minify: about 9 tokens elided]…"  # not JSON: read as text
    for text in (pretty, tabled, cut):
        assert _order_containing(r'"status":\s*"in_transit"')(text) == "O-2"
        assert _order_containing("AUD-ANC-700")(text) == "O-1"
    assert _order_containing("NOPE")(pretty) is None
