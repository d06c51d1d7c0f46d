"""Issue #16.7: `tokprof whatif RUN --model M`: the same requests re-tokenized and re-priced, estimated.

Oracle: OpenAI's list prices (https://openai.com/api/pricing/): gpt-4o-mini $0.15 input / $0.60 output per
1M tokens. gpt-4o and gpt-4o-mini share the o200k_base tokenizer, so the token counts carry over unchanged."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tokprof.cli import main
from tokprof.optimizers.whatif import CAVEAT, whatif
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage


def _run() -> Run:
    call = LLMCall(provider="openai", model="gpt-4o",
                   messages=[{"role": "user", "content": "Where is my parcel? Order O-1234, shipped 2025-03-01."}],
                   output={"role": "assistant", "content": "It is with the carrier and arrives on 2025-03-11."},
                   usage=Usage.from_provider(input_tokens=1000, output_tokens=100))
    call.cost = Cost(Decimal("0.0035"), "USD", "recorded")
    return Run(run_id="r1", spans=[Span("s1", None, "r1", "llm", "c", start_ns=0, wall_start_ns=0, end_ns=1, llm=call)])


def test_same_tokenizer_reprices_at_the_target_prices() -> None:
    w = whatif([_run()], "gpt-4o-mini")
    assert (w.input_tokens, w.output_tokens) == (1000, 100)  # same tokenizer: counts carry over
    # 1,000 x 0.15/1M + 100 x 0.60/1M = 0.00015 + 0.00006; below 1,024 tokens nothing is cached: a point
    assert w.cost.expected == Decimal("0.00021") and w.cost.is_point
    assert w.to_dict()["evidence"] == "estimated"


def test_whatif_command_json_states_the_caveat(tmp_path: Path, capsys) -> None:
    path = _run().save(tmp_path)
    assert main(["whatif", str(path), "--model", "gpt-4o-mini", "--model", "claude-sonnet-4-5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paid"]["expected"] == "0.0035" and out["caveat"] == CAVEAT
    assert [w["model"] for w in out["whatif"]] == ["gpt-4o-mini", "claude-sonnet-4-5"]
    assert all(w["evidence"] == "estimated" for w in out["whatif"])
    claude = out["whatif"][1]
    assert claude["exact_tokenizer"] is False and Decimal(claude["cost"]["expected"]) > Decimal("0.00021")
