"""Where a span's numbers come from: fill missing usage by local counting, and price it.

Provider-reported usage always wins; local counting fills only what is missing, and each field keeps
its source: ``counted`` when the model's own tokenizer did the counting, ``estimated`` when a tokenizer
of another family stood in (see :mod:`tokprof.profiler.providers.tokenizers`).

Cost = Σ tokens by type × price by type, computed by the one cost function
:func:`tokprof.profiler.providers.cost.call_cost` (the billing simulator uses the same one). A cost
recorded by the trace source (``call.cost.source == "recorded"``) is returned as is. A model with no price
gives ``None`` (and a warning naming it) — never a silent zero.
"""

from __future__ import annotations

from typing import Any, Iterator

from tokprof.profiler.model import TOKEN_SOURCES, Cost, LLMCall, Run, Span, Usage
from tokprof.profiler.policy import internal_error
from tokprof.profiler.providers.chat_format import count_completion, count_prompt, count_prompts
from tokprof.profiler.providers import cost as _cost
from tokprof.profiler.providers.prices import convert, get_price, priced_model
from tokprof.profiler.providers.tokenizers import tokenizer_for
from tokprof.profiler.session import on_llm_finish

def fill_usage(call: LLMCall) -> None:
    """Fill the usage counts a provider did not report by counting the call's messages and output."""
    usage = call.usage
    need_in = not usage.known("input_tokens") and (call.messages or call.tools)
    need_out = not usage.known("output_tokens") and call.output is not None
    if not (need_in or need_out):
        return

    model = call.model or ""
    source = tokenizer_for(model).source
    if need_in and _media_estimated(call.messages, model):
        source = "estimated"
    if source == "counted" and _long_runs_cut(call, model):
        source = "estimated"
    if need_in:
        usage.fill("input_tokens", count_prompt(call.messages, model, call.tools).tokens, source)
    if need_out:
        usage.fill("output_tokens", count_completion(call.output, model), source)


def _long_runs_cut(call: LLMCall, model: str) -> bool:
    """True when a text of the call holds a run so long that counting cut it into parts (tiktoken is
    quadratic on one long piece; :func:`tokprof.profiler.providers.encoders.split_long_pieces`): the count
    may then differ by about a token per cut from the exact one, so it is not labelled ``counted``.
    Texts shorter than the cut threshold are skipped at once."""
    from tokprof.profiler.providers.encoders import LONG_PIECE, TiktokenEncoder, has_long_piece

    texts: list[str] = []
    for m in [*(call.messages or ()), call.output]:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        for tc in (m.get("tool_calls") or ()) if isinstance(m, dict) else ():
            args = tc.get("function", {}).get("arguments") if isinstance(tc, dict) else None
            if isinstance(args, str):
                texts.append(args)
    long_texts = [t for t in texts if len(t) >= LONG_PIECE]
    if not long_texts or not isinstance(tokenizer_for(model).encoder, TiktokenEncoder):
        return False
    return any(has_long_piece(t) for t in long_texts)


def _media_estimated(messages: list, model: str) -> bool:
    """True when a prompt holds media counted by assumption (a remote image, audio, video)."""
    if not any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages or ()):
        return False
    from tokprof.profiler.providers.media import prompt_media

    return not prompt_media(messages, model).exact


def _weakest_source(usage: Usage, names: tuple[str, ...]) -> str | None:
    worst = None
    for name in names:
        src = usage.sources.get(name)
        if src is not None and (worst is None or TOKEN_SOURCES.index(src) > TOKEN_SOURCES.index(worst)):
            worst = src
    return worst


def usage_cost(usage: Usage, model: str | None, currency: str = "USD", *,
               provider: str | None = None, started_ns: int | None = None) -> Cost | None:
    """Tokens x price for ``usage`` of ``model`` (priced by :func:`tokprof.profiler.providers.cost.call_cost`,
    the one cost function); ``None`` if the model has no price or nothing is known.

    ``started_ns``: the call's wall-clock start (UTC ns) for a row with peak / off-peak prices; unknown (or
    before the rule), the row's peak prices stand in and the cost is ``estimated`` (an upper bound)."""
    if not (usage.known("input_tokens") or usage.known("output_tokens")):
        return None
    price = get_price(model, provider=provider)
    if price is None:
        return None
    name = priced_model(model, provider)  # the host's own row when it has one (Groq's gpt-oss, not OpenAI's)
    amount = _cost.call_cost(usage, name, currency.upper(), provider=provider,
                             prices=lambda _m: _cost.rates_of(price), started_ns=started_ns)
    if amount is None:
        return None
    return Cost(amount, currency.upper(), _priced_source(usage, name, price, currency, started_ns))


_SOURCE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                  "cache_write_1h_tokens")


def _priced_source(usage: Usage, model: str | None, price: Any, currency: str, started_ns: int | None,
                   weakest: Any = False) -> Any:
    """``estimated`` or ``computed``: the source of a cost priced from ``price`` (the model's primary row) in
    ``currency``. ``weakest``: :func:`_weakest_source` of the usage, when the caller has it."""
    if weakest is False:
        weakest = _weakest_source(usage, _SOURCE_FIELDS)
    used = get_price(model, warn=False, currency=currency) or price  # the row actually used (native currency)
    hours_unknown = used.time_of_day is not None and not used.time_of_day.known_at(started_ns)
    return "estimated" if (weakest == "estimated" or used.estimated or hours_unknown
                           or _tool_requests_estimated(usage, used.provider)) else "computed"


def _tool_requests_estimated(usage: Usage, provider: str | None) -> bool:
    """True when a server-tool request kind the call used has no price or an estimated one."""
    if not usage.tool_requests:
        return False
    from tokprof.profiler.providers.tool_prices import tool_price

    for kind, n in usage.tool_requests.items():
        row = tool_price(provider, kind)
        if n and (row is None or row.estimated):
            return True
    return False


def call_cost(call: LLMCall, currency: str = "USD", *, started_ns: int | None = None) -> Cost | None:
    """The cost of one call: as recorded by the trace when present, else tokens x price. ``None``: unknown.
    ``started_ns``: when it started (wall clock, UTC ns; see :func:`usage_cost`), e.g.
    ``call_start_ns(span)``."""
    recorded = call.cost
    if recorded is not None and recorded.source == "recorded" and recorded.amount is not None:
        if recorded.currency.upper() == currency.upper():
            return recorded

        return Cost(convert(recorded.amount, recorded.currency, currency), currency.upper(), "recorded")
    return usage_cost(call.usage, call.model, currency, provider=call.provider, started_ns=started_ns)


def span_cost(span: Span, currency: str = "USD") -> Cost | None:
    """The span's cost (see :func:`call_cost`). A failure inside pricing (a damaged override file, say) is
    logged once and shows as an unknown cost, never as an exception in a summary or a report."""
    if span.llm is None:
        return None
    if currency.upper() not in SUPPORTED_CURRENCIES:
        raise ValueError(f"unsupported currency {currency!r}: use one of {', '.join(SUPPORTED_CURRENCIES)}")
    try:
        return call_cost(span.llm, currency, started_ns=_cost.call_start_ns(span))
    except Exception as exc:  # noqa: BLE001 - pricing is best effort; unknown is shown as unknown
        internal_error("pricing a call", exc)
        return None


SUPPORTED_CURRENCIES = ("USD", "CNY")


RatesMemo = dict[Any, Any]
"""For one pass over many calls (an ingest): id(price-table row) -> (the row, its
:class:`~tokprof.profiler.providers.cost.Rates`), rebuilt on every :func:`usage_cost` otherwise (the row is
kept, so its id cannot be reused; a price replaced during the pass is a new row, priced anew); and
(provider, model) -> its cache rule."""


def span_costs(span: Span, currencies: tuple[str, ...] = SUPPORTED_CURRENCIES,
               rates: RatesMemo | None = None) -> list[Cost | None]:
    """``[span_cost(span, c) for c in currencies]``, with what does not depend on the currency done once: the
    price row and its rates (memoised in ``rates``), the cache rule, the token split and the weakest source.
    The same values (tests/test_span_costs.py checks every corpus call); on any error each currency goes
    through :func:`span_cost` itself, which logs it and gives ``None``."""
    call = span.llm
    n = len(currencies)
    if call is None:
        return [None] * n
    curs = [c.upper() for c in currencies]
    for c, cu in zip(currencies, curs):
        if cu not in SUPPORTED_CURRENCIES:
            raise ValueError(f"unsupported currency {c!r}: use one of {', '.join(SUPPORTED_CURRENCIES)}")
    rec = call.cost
    usage = call.usage
    if (rec is not None and rec.source == "recorded" and rec.amount is not None) \
            or not (usage.known("input_tokens") or usage.known("output_tokens")):
        return [span_cost(span, c) for c in currencies]  # no pricing to share
    try:
        return _priced(span, call, usage, curs, rates)
    except Exception:  # noqa: BLE001 - the general path logs it once and shows the cost as unknown
        return [span_cost(span, c) for c in currencies]


def _priced(span: Span, call: LLMCall, usage: Usage, curs: list[str], memo: RatesMemo | None) -> list[Cost | None]:
    """:func:`usage_cost` of ``call`` in each of ``curs`` (see :func:`span_costs`)."""
    from tokprof.profiler.providers.cache_rules import cache_rule

    price = get_price(call.model, provider=call.provider)
    if price is None:
        return [None] * len(curs)
    model = priced_model(call.model, call.provider)
    got = None if memo is None else memo.get(id(price))
    if got is None or got[0] is not price:
        got = (price, _cost.rates_of(price))
        if memo is not None:
            memo[id(price)] = got
    rates = got[1]
    rule: Any
    if memo is None:
        rule = cache_rule(call.provider, model)
    else:
        rule = memo.get((call.provider, model))
        if rule is None:
            rule = memo[(call.provider, model)] = cache_rule(call.provider, model)
    split = _cost.TokenSplit.from_usage(usage)
    started = _cost.call_start_ns(span)
    weakest = _weakest_source(usage, _SOURCE_FIELDS)
    out: list[Cost | None] = []
    for cur in curs:
        amount = _cost.split_cost(split, rates, rule, cur, started_ns=started)
        out.append(None if amount is None else
                   Cost(amount, cur, _priced_source(usage, model, price, cur, started, weakest)))
    return out


def cost_source(span: Span, currency: str = "USD") -> str | None:
    """``span_cost(span, currency).source`` (``None``: the cost is unknown) without the arithmetic, for a
    caller that bills the call otherwise but records what its own cost would have been."""
    call = span.llm
    if call is None:
        return None
    rec = call.cost
    usage = call.usage
    if not ((rec is not None and rec.source == "recorded" and rec.amount is not None)
            or not (usage.known("input_tokens") or usage.known("output_tokens"))):
        try:
            price = get_price(call.model, provider=call.provider)
            if price is None:
                return None
            # priced from a row, the amount is known in either supported currency
            return str(_priced_source(usage, priced_model(call.model, call.provider), price, currency.upper(),
                                      _cost.call_start_ns(span)))
        except Exception:  # noqa: BLE001 - the general path decides (and logs)
            pass
    c = span_cost(span, currency)
    return None if c is None or c.amount is None else str(c.source)


def fill_run_usage(run: Run) -> None:
    """Fill missing usage on every LLM span of ``run`` (importers call this after building a run).

    Prompts are counted in batches (:func:`tokprof.profiler.providers.chat_format.count_prompts`) of consecutive calls with
    the same model and tools: in an agent run they re-send a growing history, and the batch counts it at
    about the cost of its unique content."""
    calls = [s.llm for s in run.spans if s.llm is not None]
    uncounted = [c for c in calls if not c.usage.known("input_tokens") and (c.messages or c.tools)]
    for batch in _same_model_and_tools(uncounted):
        model = batch[0].model or ""
        source = tokenizer_for(model).source
        for call, n in zip(batch, count_prompts([c.messages for c in batch], model, batch[0].tools)):
            call.usage.fill("input_tokens", n, "estimated" if _media_estimated(call.messages, model) else source)
    for call in calls:
        fill_usage(call)  # the outputs; inputs are known now


def _same_model_and_tools(calls: list[LLMCall]) -> Iterator[list[LLMCall]]:
    """Runs of consecutive ``calls`` sharing their model and tool definitions."""
    batch: list[LLMCall] = []
    for call in calls:
        if batch and (call.model != batch[0].model
                      or not (call.tools is batch[0].tools or call.tools == batch[0].tools)):
            yield batch
            batch = []
        batch.append(call)
    if batch:
        yield batch


def _fill_live_span(span: Span) -> None:
    """Collector hook: fill a finished live LLM span's missing usage (never raises into the agent)."""
    try:
        if span.llm is not None:
            fill_usage(span.llm)
    except Exception as exc:  # noqa: BLE001 - counting is best effort; the user's agent must go on
        internal_error("accounting: filling usage of an LLM span", exc)


on_llm_finish(_fill_live_span)
