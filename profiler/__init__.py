"""tokprof's profiler: trace an agent run into spans with token usage and cost.

>>> from profiler import trace, profile
>>> @trace
... def plan(task): ...
>>> with profile("checkout-agent", tags={"team": "payments"}) as run:
...     plan("refund order 42")
>>> print(run.summary())
"""

from profiler.hooks import (
    current_run,
    current_span,
    profile,
    record_llm_call,
    run_in_context,
    span,
    trace,
)
from profiler.model import SCHEMA_VERSION, Cost, LLMCall, Run, Span, Usage
from profiler.store import RunFileError, load_run, save_run
import profiler.accounting  # noqa: E402,F401  (registers the hook that fills live LLM spans' missing usage)

__all__ = [
    "trace",
    "profile",
    "span",
    "record_llm_call",
    "run_in_context",
    "current_span",
    "current_run",
    "Run",
    "Span",
    "Usage",
    "Cost",
    "LLMCall",
    "SCHEMA_VERSION",
    "load_run",
    "save_run",
    "RunFileError",
]
