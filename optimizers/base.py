"""The pass framework: a pass rewrites a run and says, per call, what it changed and what it saved.

Modelled on LLVM's pass manager: each pass declares what it reads and what it changes, and the pipeline
runs passes in order on the output of the previous one. Money is never computed by a pass: after every
step the pipeline prices the whole run with the billing simulator (:mod:`tokprof.optimizers.billing`), so passes
that interact (compression breaks a provider's prefix cache) are reported by their combined effect.

Evidence classes (DEVELOPERS.md principle 4): ``measured`` (re-run live, or what a run recorded it paid),
``simulated`` (a replay of the providers' billing rules, with a range where the rule is not guaranteed),
``estimated`` (heuristic). Every ledger row carries one, plus its fidelity risk; every pass says whether it
is ``lossless``.

The baseline of every ledger is what the run paid (:mod:`tokprof.optimizers.paid`): recorded costs, else
provider-reported cache tokens, else the provider's automatic caching simulated on the unchanged run. A
pass is credited only with what it changes relative to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, ClassVar, Iterable, Literal, Protocol, runtime_checkable

from tokprof.profiler.model import Run

Evidence = Literal["measured", "simulated", "estimated"]
EVIDENCE: tuple[str, ...] = ("measured", "simulated", "estimated")


@dataclass
class LedgerRow:
    """What one pass did to one LLM call."""

    pass_name: str
    span_id: str
    model: str | None
    change: str
    """One line a person can read: "served from response cache", "masked 3 tool outputs (4,120 tokens)"."""
    evidence: Evidence
    input_tokens_before: int
    input_tokens_after: int
    output_tokens_before: int
    output_tokens_after: int
    cost_before: Decimal | None = None
    """Billed cost of the call before this pass (filled by the pipeline from the billing simulator)."""
    cost_after: Decimal | None = None
    fidelity: float | None = None
    """Reference retention of the rewritten input, 0..1 (``None``: the pass does not touch content)."""
    risk: str = "none"
    """Fidelity risk in words: ``none``, ``low``, ``medium``, ``high``, with the reason after a colon."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_saved(self) -> int:
        return (self.input_tokens_before - self.input_tokens_after) + (
            self.output_tokens_before - self.output_tokens_after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_name,
            "span_id": self.span_id,
            "model": self.model,
            "change": self.change,
            "evidence": self.evidence,
            "input_tokens_before": self.input_tokens_before,
            "input_tokens_after": self.input_tokens_after,
            "output_tokens_before": self.output_tokens_before,
            "output_tokens_after": self.output_tokens_after,
            "cost_before": None if self.cost_before is None else str(self.cost_before),
            "cost_after": None if self.cost_after is None else str(self.cost_after),
            "fidelity": self.fidelity,
            "risk": self.risk,
            "details": self.details,
        }


@dataclass
class PassStep:
    """The run's totals after one pass of the pipeline (one bar of the savings waterfall)."""

    pass_name: str
    description: str
    evidence: Evidence
    input_tokens: int
    output_tokens: int
    billed_cost: Decimal | None
    """Billed cost of the whole run after this pass, by the billing simulator, in ``currency``."""
    currency: str = "USD"
    fidelity: float | None = None
    """Fidelity of the run after this pass (cumulative), 0..1."""
    rows: list[LedgerRow] = field(default_factory=list)
    cost_range: Any = None
    """:class:`tokprof.optimizers.paid.CostRange` of ``billed_cost`` (``None``: a custom pricer gave a point)."""
    basis: dict[str, int] = field(default_factory=dict)
    """How the calls' costs are known: basis -> number of calls (``recorded cost``, ``simulated ...``)."""
    confidence: str | None = None
    """The weakest cache-rule confidence the bill rests on (``documented``/``calibrated``/``assumed``)."""
    lossless: bool | None = None
    """Whether the pass keeps every byte of meaning (``None`` for the baseline)."""

    @property
    def billed_low(self) -> Decimal | None:
        return self.billed_cost if self.cost_range is None else self.cost_range.low

    @property
    def billed_high(self) -> Decimal | None:
        return self.billed_cost if self.cost_range is None else self.cost_range.high

    def to_dict(self) -> dict[str, Any]:
        return {
            "billed_low": None if self.billed_low is None else str(self.billed_low),
            "billed_high": None if self.billed_high is None else str(self.billed_high),
            "basis": self.basis,
            "confidence": self.confidence,
            "lossless": self.lossless,
            "pass": self.pass_name,
            "description": self.description,
            "evidence": self.evidence,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "billed_cost": None if self.billed_cost is None else str(self.billed_cost),
            "currency": self.currency,
            "fidelity": self.fidelity,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass
class Ledger:
    """The savings ledger of one pipeline over one run: the baseline, then one step per pass."""

    run_id: str
    baseline: PassStep
    """What the run paid (pass name ``recorded``)."""
    steps: list[PassStep] = field(default_factory=list)

    @property
    def final(self) -> PassStep:
        return self.steps[-1] if self.steps else self.baseline

    @property
    def rows(self) -> list[LedgerRow]:
        return [r for s in self.steps for r in s.rows]

    def saved(self) -> Decimal | None:
        if self.baseline.billed_cost is None or self.final.billed_cost is None:
            return None
        return self.baseline.billed_cost - self.final.billed_cost

    def saved_range(self) -> tuple[Decimal, Decimal] | None:
        """(least, most) saved over the hit-rate scenarios, each scenario compared with itself."""
        b, f = self.baseline.cost_range, self.final.cost_range
        if b is None or f is None:
            s = self.saved()
            return None if s is None else (s, s)
        d = b - f
        return None if not d.known else (d.low, d.high)

    def to_dict(self) -> dict[str, Any]:
        saved_range = self.saved_range()
        return {
            "run_id": self.run_id,
            "baseline": self.baseline.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "saved": None if self.saved() is None else str(self.saved()),
            "saved_range": None if saved_range is None else [str(v) for v in saved_range],
        }


@dataclass
class PassContext:
    """What a pass may consult besides the run: the pipeline's options and shared services."""

    options: dict[str, Any] = field(default_factory=dict)
    currency: str = "USD"
    history: list[Run] = field(default_factory=list)
    """Earlier runs of the same pipeline invocation (a response cache spans runs, e.g. trials of one task)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Per-pass state that persists across the runs of one invocation (keyed by pass name)."""


@runtime_checkable
class Pass(Protocol):
    """A transformation of a recorded run.

    ``reads`` and ``changes`` name what it looks at and what it rewrites (``messages``, ``tools``,
    ``output``, ``usage``, ``cache``, ``model``, ``timestamps``...). ``apply`` must decide each call from
    the past of that call only (what was known before it), never from its output or later calls; it
    returns a new run (never mutates its input) and one ledger row per call it changed.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    evidence: ClassVar[Evidence]
    lossless: ClassVar[bool]
    """True only when the rewritten input carries exactly the same information (whitespace, JSON
    compaction, caching, exact dedupe, billing plans); anything that removes or replaces content is lossy.
    Lossy passes (masking, truncation, summaries) are switched on live only when the user names them."""
    reads: ClassVar[frozenset[str]]
    changes: ClassVar[frozenset[str]]

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]: ...


DEFAULT_PIPELINE: tuple[str, ...] = (
    "response-cache", "tool-cache", "minify", "truncate-outputs", "observation-mask", "dedupe", "history-budget",
    "prompt-cache",
)
"""Caching, then compression (``minify`` lossless, the rest lossy), then prompt-cache planning last (it plans breakpoints on the final prompts).
On the corpus this is the pipeline whose numbers the README quotes; ``relevance-prune`` is left out because
it gives each conversation a different system prompt and so loses the prefix shared across runs."""

PASSES: dict[str, Callable[..., Pass]] = {}
"""Registry: pass name -> factory taking the pass's options as keyword arguments."""


def register(cls: Any) -> Any:
    """Class decorator: make a pass available to pipelines and the CLI under ``cls.name``."""
    PASSES[cls.name] = cls
    return cls


def expand_passes(specs: Iterable["str | Pass"]) -> list["str | Pass"]:
    """Expand comma-separated names and the alias ``default`` (:data:`DEFAULT_PIPELINE`)."""
    out: list[str | Pass] = []
    for spec in specs:
        if not isinstance(spec, str):
            out.append(spec)
            continue
        for name in (n.strip() for n in spec.split(",")):
            if name == "default":
                out.extend(DEFAULT_PIPELINE)
            elif name:
                out.append(name)
    return out


def make_pass(spec: "str | Pass", **options: Any) -> Pass:
    """The pass named ``spec`` built with ``options`` (a pass object is returned as it is). The built-in
    passes are registered by importing :mod:`tokprof.optimizers` (which any import of this module does)."""
    if not isinstance(spec, str):
        return spec
    try:
        factory = PASSES[spec]
    except KeyError:
        raise KeyError(f"unknown pass {spec!r}; available: {', '.join(sorted(PASSES))}") from None
    return factory(**options)


def available_passes() -> dict[str, str]:
    """Pass name -> one-line description."""
    return {name: str(getattr(cls, "description", "")) for name, cls in sorted(PASSES.items())}


_MOVED_TO_PIPELINE = frozenset({"optimize", "optimize_runs", "run_tokens", "Pricer"})


def __getattr__(name: str) -> Any:
    # optimize/optimize_runs/run_tokens moved to tokprof.optimizers.pipeline (which imports this module);
    # resolved lazily so old imports keep working without an import cycle.
    if name in _MOVED_TO_PIPELINE:
        import importlib

        return getattr(importlib.import_module("tokprof.optimizers.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
