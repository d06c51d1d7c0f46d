"""Tool-result caching: the ``tool-cache`` pass (simulated) and :func:`memoize_tool` (live).

An agent often calls the same tool with the same arguments twice in one run (it re-reads a reservation,
re-lists a folder). For a *pure* tool the second call returns what the first did, so:

* the tool need not run again (live: :func:`memoize_tool`);
* the model need not be shown the same result twice: later prompts can carry a short reference to the
  earlier result instead of a second copy.

The pass simulates the second effect on a recorded run: for every tool result whose (tool, arguments)
repeat an earlier call of the run *and* whose recorded output is identical to that earlier one (so the
tool behaved as pure here), the repeated result in each later prompt is replaced by a reference. Saved
tokens are estimated from the characters removed, at the prompt's own characters-per-token ratio.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from typing import Any, Callable, ClassVar, TypeVar

from tokprof.optimizers.base import Evidence, LedgerRow, PassContext, register
from tokprof.optimizers.billing import request_digest
from tokprof.profiler.providers.messages import content_text
from tokprof.profiler.interchange.base import json_or_text  # JSON arguments decoded, else as they are
from tokprof.profiler.model import Run

F = TypeVar("F", bound=Callable[..., Any])


def _repeated_results(run: Run) -> dict[str, tuple[str, str]]:
    """tool_call_id of a repeated call -> (tool_call_id of its first occurrence, tool name)."""
    first: dict[str, tuple[str, Any]] = {}  # (tool, args) key -> (first call id, its output)
    out: dict[str, tuple[str, str]] = {}
    calls: dict[str, tuple[str, Any]] = {}
    results: dict[str, str] = {}
    # tool calls and their results as the model saw them, over every prompt of the run, in order
    for span in sorted(run.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id)):
        assert span.llm is not None
        msgs = list(span.llm.messages)
        if span.llm.output:
            msgs.append(span.llm.output)
        for m in msgs:
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or c
                calls.setdefault(str(c.get("id") or ""), (str(fn.get("name")), json_or_text(fn.get("arguments"))))
            if m.get("role") == "tool" and m.get("tool_call_id"):
                results.setdefault(str(m["tool_call_id"]), content_text(m.get("content"))[0])
    for call_id in calls:
        if call_id not in results or not call_id:
            continue
        name, args = calls[call_id]
        key = request_digest([name, args])
        if key not in first:
            first[key] = (call_id, results[call_id])
            continue
        origin, output = first[key]
        if output == results[call_id]:
            out[call_id] = (origin, name)
    return out


@register
class ToolCachePass:
    """Show a repeated pure tool call's result once: later copies become a reference to the first."""

    name: ClassVar[str] = "tool-cache"
    description: ClassVar[str] = ("identical tool calls (same tool, same arguments, same result) in a run: "
                                  "serve the repeat from a memo and show its result to the model once")
    evidence: ClassVar[Evidence] = "estimated"
    reads: ClassVar[frozenset[str]] = frozenset({"messages"})
    changes: ClassVar[frozenset[str]] = frozenset({"messages", "usage"})
    lossless: ClassVar[bool] = False  # a tool's answer may have changed since it was cached

    def __init__(self, min_chars: int = 40) -> None:
        self.min_chars = min_chars
        """Results shorter than this are left alone (a reference would not be shorter)."""

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        repeats = _repeated_results(new)
        rows: list[LedgerRow] = []
        if not repeats:
            return new, rows
        for span in new.llm_spans():
            call = span.llm
            assert call is not None
            removed_chars = 0
            total_chars = 0
            replaced = []
            msgs = []
            for m in call.messages:
                text = content_text(m.get("content"))[0]
                total_chars += len(text) + len(json.dumps(m.get("tool_calls") or "", default=str))
                cid = str(m.get("tool_call_id") or "")
                if m.get("role") == "tool" and cid in repeats and len(text) >= self.min_chars:
                    origin, tool = repeats[cid]
                    ref = f"[same result as the earlier {tool} call {origin}]"
                    msgs.append({**m, "content": ref})
                    removed_chars += len(text) - len(ref)
                    replaced.append(cid)
                else:
                    msgs.append(m)
            if not replaced or removed_chars <= 0:
                continue
            before_in = call.usage.input_tokens
            # the prompt's own characters-per-token ratio turns removed characters into tokens
            saved = int(before_in * removed_chars / max(1, total_chars)) if before_in else removed_chars // 4
            call.messages = msgs
            call.usage.set("input_tokens", max(0, before_in - saved), "estimated")
            rows.append(LedgerRow(
                pass_name=self.name, span_id=span.span_id, model=call.model,
                change=f"{len(replaced)} repeated tool result(s) shown as a reference (~{saved:,} tokens)",
                evidence=self.evidence, input_tokens_before=before_in, input_tokens_after=before_in - saved,
                output_tokens_before=call.usage.output_tokens, output_tokens_after=call.usage.output_tokens,
                risk="low: the tool returned the same result for the same arguments in this run; "
                     "assumes it is pure",
                details={"tool_call_ids": replaced, "removed_chars": removed_chars}))
        return new, rows


def repeated_tool_calls(run: Run) -> int:
    """How many tool calls of ``run`` repeat an earlier call's tool, arguments and result."""
    return len(_repeated_results(run))


# ---------------------------------------------------------------------------------------------------
# live
# ---------------------------------------------------------------------------------------------------
def memoize_tool(func: F | None = None, *, maxsize: int = 1024, ttl: float | None = None) -> Any:
    """Memoize a tool the user declares *pure* (same arguments -> same result, no side effects).

    Usable as ``@memoize_tool`` or ``@memoize_tool(maxsize=..., ttl=seconds)`` on a plain function or on
    the function before wrapping it in a LangChain ``@tool``. Arguments are keyed by their canonical JSON
    (so ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` hit the same entry). Exceptions are never cached.
    The wrapper exposes ``cache_info()`` and ``cache_clear()``."""

    def decorate(f: F) -> F:
        import time

        store: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        lock = threading.Lock()
        stats = {"hits": 0, "misses": 0}

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                key = json.dumps([args, kwargs], sort_keys=True, default=repr)
            except (TypeError, ValueError):
                return f(*args, **kwargs)
            now = time.monotonic()
            with lock:
                hit = store.get(key)
                if hit is not None and (ttl is None or now - hit[0] <= ttl):
                    store.move_to_end(key)
                    stats["hits"] += 1
                    return hit[1]
                stats["misses"] += 1
            value = f(*args, **kwargs)
            with lock:
                store[key] = (now, value)
                store.move_to_end(key)
                while len(store) > maxsize:
                    store.popitem(last=False)
            return value

        wrapper.cache_info = lambda: dict(stats, size=len(store))  # type: ignore[attr-defined]
        wrapper.cache_clear = lambda: (store.clear(), stats.update(hits=0, misses=0))  # type: ignore[attr-defined, func-returns-value]
        wrapper.__tokprof_pure__ = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
