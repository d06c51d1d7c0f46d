"""Structural checks a loaded or imported run must pass before anything walks it.

A parent-id cycle (``a -> b -> a``, or a span that is its own parent) makes every walk up the tree loop
forever (``Run.span_tags``, roll-ups) and a topological sort fail. Files from elsewhere can hold one, so
every loader calls :func:`break_parent_cycles`: the span of each cycle that was found first becomes a
root, and the run's metadata says which parent links were dropped (nothing is silently changed).

Field repairs (issue #21 point 7): a value of the wrong type or out of range is repaired at the boundary,
record by record, rather than dropping the record or crashing a command later — names and tag values to
text, times beyond int64 unknown, token counts read when clean and missing otherwise, non-string roles to
text, non-object tool calls dropped. The run loader repairs JSON records (:func:`repair_span` ...), the
importers the built run (:func:`repair_run`); both list each repair in ``metadata["fields_repaired"]``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tokprof.profiler.model import Run

from tokprof.profiler.parent_cycles import CYCLES_KEY as CYCLES_KEY  # re-exported
from tokprof.profiler.parent_cycles import break_parent_cycles as break_parent_cycles  # re-exported


# ---------------------------------------------------------------------------------------------------
# Field repairs at the boundary (issue #21 point 7)
# ---------------------------------------------------------------------------------------------------
# A run file from elsewhere can hold values of the wrong type or beyond any real range. The loader accepts
# every record whose meaning survives and repairs the field instead of dropping the record or passing the
# value on to crash a report, the fleet ledger or pyarrow later. Each repair is one line of text naming
# the record; the loader collects them in ``run.metadata[REPAIRS_KEY]`` and warns once per file.

REPAIRS_KEY = "fields_repaired"
"""Run metadata: ``["line 4 (span 3): name null -> ''", ...]`` — what the loader changed, record by record."""

MAX_REPAIRS_KEPT = 200
"""Repairs listed in the metadata per run (the count of the rest is kept): a file of junk stays small."""

_INT64 = 1 << 63
MAX_TOKENS = 1 << 53
"""The largest token count accepted: above it a float loses integers, and no real call comes near it."""

TIME_FIELDS = ("start_ns", "end_ns", "wall_start_ns")


def as_text(value: Any) -> str:
    """``value`` as a string: strings unchanged, anything else JSON-dumped (``5`` -> ``"5"``, ``["a"]`` ->
    ``'["a"]'``), so a name or a tag value is always hashable, sortable and printable."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (RecursionError, ValueError, TypeError):  # nested too deeply, NaN in a strict dump...
        return f"<{type(value).__name__}>"


def _shown(value: Any) -> str:
    """A value as it was in the file (strings quoted), cut short for a message."""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else as_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


def time_ns(value: Any) -> int | None:
    """A time in integer nanoseconds that fits in 64 bits, or ``None`` (unknown): floats only when whole
    and finite, digit strings when clean; ``1e308``, ``inf``, ``10**30``, ``true`` are unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -_INT64 < value < _INT64:
        return value
    return None


def token_count(value: Any) -> int | None:
    """A token count as a non-negative int no larger than :data:`MAX_TOKENS`, or ``None`` (missing): a
    clean digit string (``"30"``) or a whole float (``30.0``) is read as the integer; ``"1e3"``, ``-3``,
    ``NaN``, ``inf``, ``10**18`` and ``true`` are missing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) < 20:
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def repair_tags(holder: dict[str, Any], where: str) -> list[str]:
    """``holder["tags"]`` as ``{str: str}``: non-string values JSON-dumped; tags that are not an object
    dropped."""
    tags = holder.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, dict):
        holder["tags"] = {}
        return [f"{where}: tags {_shown(tags)} are not an object; dropped"]
    fixed = [k for k, v in tags.items() if not isinstance(v, str)]
    if not fixed:
        return []
    holder["tags"] = {k: as_text(v) for k, v in tags.items()}
    return [f"{where}: tag {k!r} value {_shown(tags[k])} is not a string; kept as its JSON text" for k in fixed]


def repair_time(holder: dict[str, Any], name: str, where: str) -> list[str]:
    """``holder[name]`` a 64-bit integer nanosecond time, or removed (unknown)."""
    value = holder.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and -_INT64 < value < _INT64):
        return []
    fixed = time_ns(value)
    holder[name] = fixed
    if fixed is None:
        return [f"{where}: {name} {_shown(value)} is not a 64-bit nanosecond time; treated as unknown"]
    return [f"{where}: {name} {_shown(value)} read as {fixed}"]


def _repair_span_end(rec: dict[str, Any], where: str) -> list[str]:
    """Times that each fit in 64 bits but whose duration (``end_ns - start_ns``) or wall-clock end
    (``wall_start_ns`` + duration) do not are a span end that cannot be true: the end becomes unknown (an
    open span) rather than crashing every consumer that derives the end (the fleet ledger's TIMESTAMPs)."""
    start, end, wall = rec.get("start_ns") or 0, rec.get("end_ns"), rec.get("wall_start_ns")  # Span.from_dict's 0
    if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
        return []
    dur = end - start
    wall_end = dur + (wall if isinstance(wall, int) and not isinstance(wall, bool) else 0)
    if -_INT64 < dur < _INT64 and -_INT64 < wall_end < _INT64:
        return []
    rec["end_ns"] = None
    return [f"{where}: end_ns {end} is {dur} ns after start_ns, beyond a 64-bit wall-clock time; treated as unknown"]


def repair_message(msg: Any, where: str) -> list[str]:
    """A chat message made safe to walk: a non-string role becomes its text; ``tool_calls`` entries that
    are not objects are dropped (a ``tool_calls`` that is not a list is dropped whole)."""
    if not isinstance(msg, dict):
        return []
    out: list[str] = []
    role = msg.get("role")
    if role is not None and not isinstance(role, str):
        msg["role"] = as_text(role)
        out.append(f"{where}: message role {_shown(role)} is not a string; kept as its JSON text")
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            del msg["tool_calls"]
            out.append(f"{where}: tool_calls {_shown(calls)} is not a list; dropped")
        else:
            bad = [c for c in calls if not isinstance(c, dict)]
            if bad:
                msg["tool_calls"] = [c for c in calls if isinstance(c, dict)]
                out.append(f"{where}: {len(bad)} tool call(s) not an object ({_shown(bad[0])}); dropped")
    return out


def repair_messages(llm: dict[str, Any], where: str) -> list[str]:
    """An inline ``messages`` list keeps only objects (a message that is a number, a string, a list or null
    cannot be read as a chat message: dropped, and the repair says so); each kept message is repaired."""
    msgs = llm.get("messages")
    if not isinstance(msgs, list):
        return []
    out: list[str] = []
    bad = [m for m in msgs if not isinstance(m, dict)]
    if bad:
        llm["messages"] = [m for m in msgs if isinstance(m, dict)]
        out.append(f"{where}: {len(bad)} message(s) not an object ({_shown(bad[0])}); dropped")
    for m in llm["messages"]:
        out += repair_message(m, where)
    return out


def repair_tools(llm: dict[str, Any], where: str) -> list[str]:
    """Tool definitions that are not objects, or whose ``function`` is not an object, are dropped."""
    tools = llm.get("tools")
    if not isinstance(tools, list):
        return []
    keep = [t for t in tools if isinstance(t, dict) and isinstance(t.get("function", {}), dict)]
    if len(keep) == len(tools):
        return []
    bad = next(t for t in tools if not (isinstance(t, dict) and isinstance(t.get("function", {}), dict)))
    llm["tools"] = keep
    return [f"{where}: {len(tools) - len(keep)} tool definition(s) not readable ({_shown(bad)}); dropped"]


def repair_output(llm: dict[str, Any], where: str) -> list[str]:
    """A model output that is not a message object becomes an assistant message with it as text."""
    output = llm.get("output")
    if output is None or isinstance(output, dict):
        return repair_message(output, where + " output")
    llm["output"] = {"role": "assistant", "content": as_text(output)}
    return [f"{where}: output {_shown(output)} is not a message; kept as an assistant message with its text"]


def repair_usage(usage: dict[str, Any], where: str) -> list[str]:
    """Token counts read as non-negative ints (see :func:`token_count`); a count that cannot be read is
    removed with its source, so it is missing (counted again where the command counts) rather than
    wrong. A source that is not one of ``provider``/``counted``/``estimated`` (or ``sources`` that is not
    an object) makes that field's source ``estimated``: where the number came from is unknown, so it is
    never taken as provider truth. Server-tool request counts (``tool_requests``) that are not clean counts
    are dropped; other keys whose value is not a count are dropped (tokprof does not read them)."""
    from tokprof.profiler.model import TOKEN_SOURCES, USAGE_FIELDS

    out: list[str] = []
    raw_sources = usage.get("sources")
    if raw_sources is not None and not isinstance(raw_sources, dict):
        usage["sources"] = {}
        out.append(f"{where}: usage sources {_shown(raw_sources)} are not an object; "
                   "the counts' sources are unknown (estimated)")
        raw_sources = usage["sources"]
        for name in USAGE_FIELDS:
            if usage.get(name) is not None:
                raw_sources[name] = "estimated"
    sources = raw_sources if isinstance(raw_sources, dict) else None
    if sources is not None:
        for key in list(sources):
            src = sources[key]
            if key not in USAGE_FIELDS:
                del sources[key]
                out.append(f"{where}: usage source for unknown field {_shown(key)} dropped")
            elif not (isinstance(src, str) and src in TOKEN_SOURCES):
                sources[key] = "estimated"
                out.append(f"{where}: {key} source {_shown(src)} is not one of {', '.join(TOKEN_SOURCES)}; "
                           "treated as estimated")
    out += _repair_tool_requests(usage, where)
    for key in [k for k in usage if k not in USAGE_FIELDS and k not in ("sources", "tool_requests")]:
        value = usage[key]
        if not (value is None or (type(value) is int and 0 <= value < _INT64)):
            del usage[key]
            out.append(f"{where}: usage {_shown(key)} {_shown(value)} is not a count tokprof reads; dropped")
    for name in USAGE_FIELDS:
        value = usage.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS):
            continue
        fixed = token_count(value)
        if fixed is None:
            del usage[name]
            if sources is not None:
                sources.pop(name, None)
            out.append(f"{where}: {name} {_shown(value)} is not a token count; treated as missing")
        else:
            usage[name] = fixed
            out.append(f"{where}: {name} {_shown(value)} read as {fixed}")
    return out


def _repair_tool_requests(usage: dict[str, Any], where: str) -> list[str]:
    """``usage["tool_requests"]`` as ``{str: count}``: junk entries dropped, a non-object dropped whole."""
    requests = usage.get("tool_requests")
    if requests is None:
        return []
    if not isinstance(requests, dict):
        del usage["tool_requests"]
        return [f"{where}: tool_requests {_shown(requests)} is not an object; dropped"]
    out: list[str] = []
    clean: dict[str, int] = {}
    for kind, n in requests.items():
        fixed = token_count(n)
        if fixed is None:
            out.append(f"{where}: tool_requests {_shown(kind)} {_shown(n)} is not a count; dropped")
        else:
            clean[kind] = fixed
    if out:
        usage["tool_requests"] = clean
    return out


def repair_cost(llm: dict[str, Any], where: str) -> list[str]:
    """A recorded cost that cannot be read (not an object, an amount that is not a finite non-negative
    decimal, a currency or source that is not text) is removed: the call has no recorded cost and is
    priced from its tokens like any other, and the repair says so."""
    from decimal import Decimal, InvalidOperation

    cost = llm.get("cost")
    if cost is None:
        return []
    why = None
    if not isinstance(cost, dict):
        why = "is not an object"
    else:
        amount = cost.get("amount")
        if amount is not None:
            try:
                if isinstance(amount, bool) or not isinstance(amount, (str, int, float)):
                    raise TypeError
                d = Decimal(str(amount).strip())
                if not d.is_finite() or d < 0 or d.adjusted() > 15:
                    raise ValueError
            except (TypeError, ValueError, InvalidOperation, ArithmeticError):
                why = f"amount {_shown(amount)} is not a finite non-negative amount"
        for key in ("currency", "source"):
            if why is None and cost.get(key) is not None and not isinstance(cost.get(key), str):
                why = f"{key} {_shown(cost.get(key))} is not text"
        if why is None and cost.get("source") not in (None, "recorded", "computed", "estimated"):
            why = f"source {_shown(cost.get('source'))} is not recorded/computed/estimated"
        cur = cost.get("currency")
        if why is None and isinstance(cur, str) and not (len(cur) == 3 and cur.isascii() and cur.isalpha()):
            why = f"currency {_shown(cur)} is not a currency code"
    if why is None:
        return []
    llm["cost"] = None
    return [f"{where}: recorded cost {_shown(cost)} {why}; no recorded cost, priced from its tokens"]


def repair_llm_names(llm: dict[str, Any], where: str) -> list[str]:
    """``model``, ``provider``, ``response_id`` and ``finish_reason`` as text (``123`` -> ``"123"``)."""
    out: list[str] = []
    for key in ("model", "provider", "response_id", "finish_reason"):
        value = llm.get(key)
        if value is not None and not isinstance(value, str):
            llm[key] = as_text(value)
            out.append(f"{where}: {key} {_shown(value)} is not a string; kept as its JSON text")
    return out


def repair_header(rec: dict[str, Any], where: str) -> list[str]:
    """The run header: name a string, tags ``{str: str}``, start time in range."""
    out = repair_tags(rec, where) + repair_time(rec, "started_wall_ns", where)
    if rec.get("name") is not None and not isinstance(rec["name"], str):
        out.append(f"{where}: run name {_shown(rec['name'])} is not a string; kept as its JSON text")
        rec["name"] = as_text(rec["name"])
    return out


def repair_span(rec: dict[str, Any], where: str) -> list[str]:
    """A span record: name a string (``null`` -> ``""``, the name of a span recorded without one), tags
    ``{str: str}``, times in range, and in its LLM call the usage, inline messages and output."""
    out: list[str] = []
    name = rec.get("name", "")
    if not isinstance(name, str):
        rec["name"] = "" if name is None else as_text(name)
        out.append(f"{where}: span name {_shown(name)} is not a string; "
                   + ("treated as ''" if name is None else "kept as its JSON text"))
    out += repair_tags(rec, where)
    for field in TIME_FIELDS:
        out += repair_time(rec, field, where)
    out += _repair_span_end(rec, where)
    llm = rec.get("llm")
    if isinstance(llm, dict):
        out += repair_llm_names(llm, where) + repair_cost(llm, where)
        if isinstance(llm.get("usage"), dict):
            out += repair_usage(llm["usage"], where)
        out += repair_messages(llm, where) + repair_tools(llm, where) + repair_output(llm, where)
    return out


def note_repairs(run: Run, repairs: list[str]) -> None:
    """Record ``repairs`` in the run's metadata (bounded: the first :data:`MAX_REPAIRS_KEPT`, then a count)."""
    if not repairs:
        return
    kept = run.metadata.get(REPAIRS_KEY)
    listed: list[Any] = list(kept) if isinstance(kept, list) else []
    room = max(0, MAX_REPAIRS_KEPT - len(listed))
    listed += repairs[:room]
    run.metadata[REPAIRS_KEY] = listed
    if len(repairs) > room:
        run.metadata[REPAIRS_KEY + "_not_listed"] = int(run.metadata.get(REPAIRS_KEY + "_not_listed") or 0) + \
            len(repairs) - room


def repair_run(run: Run) -> list[str]:
    """The repairs of :func:`repair_span` on a run built by an importer (Span objects rather than JSON
    records): run and span names and tags to text, message roles to text, non-object tool calls dropped.
    Token counts beyond :data:`MAX_TOKENS` missing, as the loader reads them (as provider truth, ``2**80``
    priced one call at 3e18 USD). Times: ``interchange.base.check_run``. Returns the repairs, noted in metadata."""
    out: list[str] = []
    holder: dict[str, Any] = {"tags": run.tags, "name": run.name}
    out += repair_tags(holder, "run")
    run.tags = holder["tags"]
    if not isinstance(run.name, str):
        out.append(f"run: run name {_shown(run.name)} is not a string; kept as its JSON text")
        run.name = as_text(run.name)
    for sp in run.spans:
        where = f"span {str(sp.span_id)[:24]}"
        if not isinstance(sp.name, str):
            out.append(f"{where}: span name {_shown(sp.name)} is not a string; "
                       + ("treated as ''" if sp.name is None else "kept as its JSON text"))
            sp.name = "" if sp.name is None else as_text(sp.name)
        if sp.tags:
            holder = {"tags": sp.tags}
            out += repair_tags(holder, where)
            sp.tags = holder["tags"]
        if sp.llm is not None:
            for m in sp.llm.messages if isinstance(sp.llm.messages, list) else []:
                out += repair_message(m, where)
            out += repair_message(sp.llm.output, where + " output")
            out += _repair_built_usage(sp.llm.usage, where)
    note_repairs(run, out)
    return out


def _repair_built_usage(usage: Any, where: str) -> list[str]:
    """:func:`repair_usage`'s range rule on a built Usage: a count outside ``[0, MAX_TOKENS]`` is missing."""
    from tokprof.profiler.model import USAGE_FIELDS

    out: list[str] = []
    for name in USAGE_FIELDS:
        value = getattr(usage, name, 0)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
            continue
        setattr(usage, name, 0)
        usage.sources.pop(name, None)
        out.append(f"{where}: {name} {_shown(value)} is not a token count; treated as missing")
    return out
