"""tokprof: a token and cost profiler for LLM agents, with an optimizer attached.

The one-import façade: ``from tokprof import trace, profile, optimize``.
"""

from tokprof.profiler import Run, Span, Usage, load_run, profile, record_llm_call, span, trace

__version__ = "0.1.0"


def optimize(run, passes=(), **kwargs):  # noqa: ANN001, ANN201 - thin re-export, documented in tokprof.optimizers.base
    """Run optimization passes over a recorded run; see :func:`tokprof.optimizers.base.optimize`."""
    from tokprof.optimizers.base import optimize as _optimize

    return _optimize(run, passes, **kwargs)


__all__ = ["trace", "profile", "span", "record_llm_call", "Run", "Span", "Usage", "load_run", "optimize",
           "__version__"]
