"""tokprof's optimizers: passes that rewrite a recorded run, the pipeline that prices each step with the
billing simulator, and the live layer that applies the same passes to a running agent.

Importing this package registers the built-in passes with :mod:`tokprof.optimizers.base` (each pass module
registers its pass on import), so :func:`tokprof.optimizers.base.make_pass` finds them whichever module of
the package is imported first.
"""

from tokprof.optimizers import compression, decompose, prompt_cache, response_cache, tool_cache  # noqa: F401
