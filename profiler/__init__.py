"""tokprof's profiler: trace an agent run into spans with token usage and cost.

>>> from tokprof import trace, profile
>>> @trace
... def plan(task): ...
>>> with profile("checkout-agent", tags={"team": "payments"}) as run:
...     plan("refund order 42")
>>> print(run.summary())
"""

# Importing accounting and the integrations registers their profile()/LLM-span hooks (usage filling; LangChain
# auto-attach and SDK instrumentation, whose libraries are imported only when used).
import tokprof.profiler.accounting  # noqa: F401
from tokprof.profiler.graph import call_graph
from tokprof.profiler.integrations import instrument, uninstrument
from tokprof.profiler.hooks import (
    current_run,
    current_span,
    profile,
    record_llm_call,
    run_in_context,
    span,
    trace,
)
from tokprof.profiler.model import (
    SCHEMA_VERSION,
    Cost,
    LLMCall,
    Run,
    RunOperations,
    Span,
    Usage,
    bind_run_operations,
)
from tokprof.profiler.run_loader import RunFileError, load_run
from tokprof.profiler.run_writer import save_run
from tokprof.profiler.summary import summarize

bind_run_operations(RunOperations(summarize=summarize, call_graph=call_graph, save_run=save_run))


__all__ = [
    "trace",
    "profile",
    "span",
    "record_llm_call",
    "run_in_context",
    "instrument",
    "uninstrument",
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
