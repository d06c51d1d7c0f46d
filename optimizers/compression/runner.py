"""The run-level side of a compression pass: apply a message-list compressor to every call of a run.

A compression pass only has to say how it rewrites one call's message list (``compress``); this base
class copies the run, rewrites each call's input, updates its usage (see
:func:`tokprof.optimizers.compression.common.rewrite_call`), and writes one ledger row per changed call with the
call's context fidelity (:mod:`tokprof.optimizers.fidelity`). The billing simulator prices the result (the pipeline does that).
"""

from __future__ import annotations

from typing import Any, ClassVar

from tokprof.optimizers.base import Evidence, LedgerRow, PassContext
from tokprof.optimizers.compression.common import Rewritten, rewrite_call
from tokprof.optimizers.fidelity import call_fidelity
from tokprof.profiler import keys
from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import Message, Run


class MessagePass:
    """Base of the compression passes: subclasses implement :meth:`compress`."""

    name: ClassVar[str] = "message-pass"
    description: ClassVar[str] = ""
    evidence: ClassVar[Evidence] = "simulated"
    reads: ClassVar[frozenset[str]] = frozenset({"messages"})
    changes: ClassVar[frozenset[str]] = frozenset({"messages", "usage", "cache"})
    risk: ClassVar[str] = "low"
    lossless: ClassVar[bool] = False
    """True only when the model still reads everything the input said (a lossless pass is on by default
    live); compression removes or replaces content unless a pass says otherwise (``minify``)."""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise TypeError(f"pass {self.name!r}: unknown option(s) {sorted(unknown)}; "
                            f"known: {sorted(self.defaults)}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    # -- to implement -------------------------------------------------------------------------------
    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        """Rewrite one call's input. Must depend only on ``messages`` (the call's own input)."""
        raise NotImplementedError

    # -- the Pass protocol ----------------------------------------------------------------------------
    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        orig = {s.span_id: s for s in run.spans if s.llm is not None}
        rows: list[LedgerRow] = []
        for span in new.llm_spans():
            call = span.llm
            assert call is not None
            if not call.messages or keys.is_embedding(span.attributes):
                # an embedding's input is the data being embedded: rewriting it changes the vectors, and
                # there is no conversation history to trim
                continue
            try:
                rw = self.compress(list(call.messages), call.model)
            except Exception as exc:  # a pass bug must not lose the run: leave the call as it was
                internal_error(f"pass {self.name}", exc)
                continue
            if rw.messages == call.messages:
                continue
            before, after, src = rewrite_call(call, rw)
            ret = call_fidelity(orig[span.span_id], span)
            share = ret.share
            risk = self.risk
            if ret.lost or ret.rules_lost:
                risk = f"{'high' if (share or 0) < 0.9 else 'medium'}: lost {', '.join((ret.lost + [r[:40] for r in ret.rules_lost])[:5])}"
            rows.append(LedgerRow(
                pass_name=self.name, span_id=span.span_id, model=call.model,
                change=rw.change or f"{self.name}: rewrote input",
                evidence=self.evidence,
                input_tokens_before=before, input_tokens_after=after,
                output_tokens_before=call.usage.output_tokens, output_tokens_after=call.usage.output_tokens,
                fidelity=1.0 if share is None else share, risk=risk,
                details={**rw.details, "tokens_source": src, "facts_referenced": ret.referenced,
                         "facts_lost": ret.lost[:20]},
            ))
        return new, rows
