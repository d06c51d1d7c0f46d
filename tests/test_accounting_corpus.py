"""Token counting and pricing against real provider usage: the τ²-bench corpus.

The simulated user (gpt-4.1) of each τ² submission reports ``usage.prompt_tokens`` for a prompt we can
rebuild exactly (:mod:`tokprof.profiler.interchange.tau2_user`), which makes it an independent check of our
counting; its recorded ``cost`` checks our prices on calls no prompt cache can have touched.
"""

from __future__ import annotations

import gzip
import json
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tokprof.profiler.accounting import usage_cost
from tokprof.profiler.providers.chat_format import count_messages
from tokprof.profiler.interchange.tau2_user import user_prompt_messages
from tokprof.profiler.model import Usage


def _files(corpus: Path) -> list[Path]:
    files = sorted((corpus / "tau2").glob("*.json.gz"))
    if not files:
        pytest.skip("no tau2 files in the corpus")
    return files


def _load(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _usage(m: dict[str, Any]) -> dict[str, Any] | None:
    u = m.get("usage")
    return u if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int) else None


def user_calls(doc: dict[str, Any]) -> Iterator[tuple[list[dict], int]]:
    """(rebuilt prompt, recorded prompt_tokens) for every simulated-user call with usage."""
    tasks = {t["id"]: t for t in doc["tasks"]}
    for sim in doc["simulations"]:
        msgs = sim["messages"]
        for i, m in enumerate(msgs):
            u = _usage(m)
            if m.get("role") == "user" and u:
                yield user_prompt_messages(doc["info"], tasks[sim["task_id"]], msgs[:i]), u["prompt_tokens"]


def token_errors(corpus: Path) -> list[float]:
    errors = []
    for path in _files(corpus):
        doc = _load(path)
        model = doc["info"]["user_info"]["llm"]
        if "gpt-4.1" not in model:
            continue
        for prompt, recorded in user_calls(doc):
            errors.append(abs(count_messages(prompt, model) - recorded) / recorded)
    return errors


def cost_errors(corpus: Path) -> list[float]:
    """Relative error of our cost from recorded usage vs the recorded cost, on calls with a prompt under
    1,024 tokens (below every provider's automatic prompt-cache minimum) and on Claude calls (cached only on
    request). Calls whose recorded cost is zero (a self-hosted model) carry no price to compare."""
    errors = []
    for path in _files(corpus):
        doc = _load(path)
        models = {"assistant": doc["info"]["agent_info"]["llm"], "user": doc["info"]["user_info"]["llm"]}
        for sim in doc["simulations"]:
            for m in sim["messages"]:
                u = _usage(m)
                model = models.get(m.get("role"))
                cost = m.get("cost")
                if not u or model is None or not isinstance(cost, (int, float)) or cost <= 0:
                    continue
                if not (u["prompt_tokens"] < 1024 or "claude" in model):
                    continue
                ours = usage_cost(Usage.from_provider(input_tokens=u["prompt_tokens"],
                                                      output_tokens=u["completion_tokens"]), model)
                assert ours is not None, model
                recorded = Decimal(str(cost))
                errors.append(float(abs(ours.amount - recorded) / recorded))
    return errors


def test_simulated_user_prompt_tokens_match_provider_usage(corpus: Path) -> None:
    errors = token_errors(corpus)
    assert len(errors) >= 500
    median = statistics.median(errors)
    print(f"\ntau2 gpt-4.1 user calls: {len(errors)}, median abs error {median:.4%}, max {max(errors):.4%}")
    assert median <= 0.005
    assert sum(e == 0 for e in errors) / len(errors) > 0.95  # nearly all exact


def test_recorded_costs_match_our_prices(corpus: Path) -> None:
    errors = cost_errors(corpus)
    assert len(errors) >= 300
    median = statistics.median(errors)
    print(f"\ntau2 uncached calls priced: {len(errors)}, median abs error {median:.4%}, max {max(errors):.4%}")
    assert median <= 0.01


def test_rebuilt_prompt_shape(corpus: Path) -> None:
    doc = _load(_files(corpus)[0])
    prompt, _ = next(user_calls(doc))
    assert prompt[0]["role"] == "system" and "<scenario>" in prompt[0]["content"]
    assert prompt[0]["content"].startswith(doc["info"]["user_info"]["global_simulation_guidelines"])
    assert [m["role"] for m in prompt[1:]] == ["user"]  # the agent's greeting, seen as "user"
