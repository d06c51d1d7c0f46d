"""``profile(budget=...)``: budgets checked while the agent runs (registers its profile hook on import; the
``tokprof`` façade imports it).

On profile enter the budgets are read (:func:`tokprof.fleet.budgets.coerce_budgets`); a calendar budget
(day/week/month) starts from what the fleet ledger already holds for its period, when a ledger exists. As
each LLM call finishes (after accounting has filled its usage) its tokens or cost (the one cost function,
:func:`tokprof.profiler.accounting.span_cost`) are added. Crossing 80% warns once (``BudgetWarning``, and the
``tokprof`` logger); crossing 100% warns again, and only a budget with ``hard=True`` raises
:class:`BudgetExceeded` into the agent (from the call that crossed it and every call after). The state is
kept in ``run.metadata["budgets"]``.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from decimal import Decimal
from typing import Any

from tokprof.fleet.budgets import WARN_AT, Budget, BudgetError, check, coerce_budgets
from tokprof.profiler import hooks
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.model import Span

log = logging.getLogger("tokprof")


class BudgetWarning(UserWarning):
    """A budget is 80% used, or over (without ``hard``)."""


class BudgetExceeded(hooks.StopRun):
    """A hard budget is used up; raised into the agent by the call that crossed it and every later call."""

    def __init__(self, message: str, budget: Budget, used: Decimal) -> None:
        super().__init__(message)
        self.budget = budget
        self.used = used


class _Guard:
    """The budgets of one profile and what the run has used of each."""

    def __init__(self, prof: Any, budgets: list[Budget]) -> None:
        self.prof = prof
        self.run = prof.run
        self.budgets = budgets
        self.base = [self._already_spent(b) for b in budgets]
        self.used = [Decimal(0)] * len(budgets)
        self.state = ["ok"] * len(budgets)
        self._publish()

    def _already_spent(self, b: Budget) -> Decimal:
        """What the ledger holds for a calendar budget's current period (0 without a ledger)."""
        if b.period == "run":
            return Decimal(0)
        try:
            # the ledger needs pyarrow/duckdb (optional): imported only for a calendar budget
            from tokprof.fleet.ledger import connect, ledger_path

            path = ledger_path()
            if not path.exists():
                return Decimal(0)

            con = connect(path, read_only=True)
            try:
                row = check(con, [b], dt.datetime.now(dt.timezone.utc).date())[0]
            finally:
                con.close()
            return Decimal(row["used"])
        except Exception as exc:  # noqa: BLE001 - no ledger (or no duckdb): the run's own use still counts
            hooks.internal_error("budget: reading the fleet ledger", exc)
            return Decimal(0)

    def _amount(self, span: Span, b: Budget) -> Decimal:
        if b.unit == "tokens":
            u = span.llm.usage  # type: ignore[union-attr]
            return Decimal(u.input_tokens + u.output_tokens)
        c = span_cost(span, b.unit)
        return Decimal(0) if c is None or c.amount is None else c.amount

    def on_call(self, span: Span) -> None:
        """Collector hook: add the finished call to each budget in scope; warn or stop as asked."""
        stop: BudgetExceeded | None = None
        for i, b in enumerate(self.budgets):
            if not (b.applies_to_run(self.run.name, self.run.tags) and b.applies_to_call(span.llm.model)):  # type: ignore[union-attr]
                continue
            self.used[i] += self._amount(span, b)
            total = self.base[i] + self.used[i]
            share = total / b.limit
            what = f"{total:,.6f}".rstrip("0").rstrip(".") if b.unit != "tokens" else f"{int(total):,}"
            msg = f"tokprof budget {b.label!r}: {what} of {b.limit} {b.unit} used ({share:.0%})"
            if share >= 1:
                if self.state[i] != "over":
                    self.state[i] = "over"
                    self._warn(msg + (" - hard limit, stopping the run" if b.hard else " - over budget"))
                if b.hard and stop is None:
                    stop = BudgetExceeded(msg + " - hard limit", b, total)
            elif share >= WARN_AT and self.state[i] == "ok":
                self.state[i] = "warn"
                self._warn(msg)
        self._publish()
        if stop is not None:
            self._keep(span)
            raise stop

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        warnings.warn(msg, BudgetWarning, stacklevel=2)

    def _keep(self, span: Span) -> None:
        """Nothing lost: the span that crossed a hard limit is written before the exception skips the
        collector's own write (payloads dropped first when the profile does not capture them)."""
        collector = self.prof.collector
        if collector is None or collector.writer is None:
            return
        if not collector.capture:
            hooks.strip_payloads(span)
        collector.writer.write_span(span)

    def _publish(self) -> None:
        self.run.metadata["budgets"] = [
            {"budget": b.label, "scope": b.scope, "period": b.period, "unit": b.unit, "limit": str(b.limit),
             "used_before_run": str(self.base[i]), "used_in_run": str(self.used[i]), "status": self.state[i],
             "hard": b.hard}
            for i, b in enumerate(self.budgets)
        ]


def _on_enter(prof: Any) -> None:
    budget = getattr(prof, "budget", None)
    if budget is None or prof.collector is None:
        return
    try:
        budgets = coerce_budgets(budget)
    except BudgetError as exc:
        # A mistyped budget must be seen, but it does not stop the agent.
        log.warning("%s (budget not applied)", exc)
        warnings.warn(f"{exc} (budget not applied)", BudgetWarning, stacklevel=3)
        return
    guard = _Guard(prof, budgets)
    prof.extras["budget_guard"] = guard
    prof.collector.finish_hooks.append(guard.on_call)


hooks.on_profile_enter(_on_enter)
