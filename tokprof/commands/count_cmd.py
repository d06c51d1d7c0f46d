"""`tokprof count [--model M] [--json] [FILE|-]`: count a text or a chat prompt as the provider bills it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tokprof.profiler.accounting import usage_cost
from tokprof.profiler.model import Usage
from tokprof.profiler.providers.chat_format import count_prompt
from tokprof.profiler.providers.prices import get_price
from tokprof.profiler.providers.tokenizers import tokenizer_for
from tokprof.console_safe import clean


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "count",
        help="count the tokens (and input cost) of a text or a chat prompt",
        description="Count FILE (or stdin with '-' or no FILE) as MODEL's provider bills it. A JSON list of "
                    "chat messages (OpenAI format), or {\"messages\": [...], \"tools\": [...]}, is counted "
                    "with the provider's chat template and tool-definition overhead; anything else is "
                    "counted as plain text. Prints the tokens, the tokenizer used, whether the count is "
                    "exact or estimated, and the input cost. Works offline.",
    )
    p.add_argument("file", nargs="?", default="-", help="the file to count ('-' or omitted: stdin)")
    p.add_argument("--model", "-m", default="gpt-4o", help="model whose tokenizer and price to use "
                                                          "(default gpt-4o)")
    p.add_argument("--currency", choices=["USD", "CNY"], default=None,
                   help="currency of the cost (default: the model's price currency)")
    p.add_argument("--text", action="store_true", help="count the input as plain text even if it is JSON")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=count_command)


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    from tokprof.profiler.interchange.base import read_text

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a folder; name a file")
    if not p.is_file():  # /dev/zero, a FIFO: reading would never end
        raise OSError(f"{p}: not a regular file (a device or a pipe); pass its text on standard input with -")
    # the importers' reader: a size limit (no MemoryError on a huge file), gzip by magic, a clear non-UTF-8 error
    return read_text(p), str(p)


def _as_prompt(text: str, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(messages, tools) if ``text`` is a JSON chat prompt, else ``None`` (count it as plain text)."""
    stripped = text.lstrip()
    if not stripped.startswith(("[", "{")):
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer literal longer than Python converts
        raise ValueError(f"{where}: unreadable JSON value ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("messages"), list):
        messages, tools = doc["messages"], doc.get("tools") or []
    elif isinstance(doc, list) and doc and all(isinstance(m, dict) and "role" in m for m in doc):
        messages, tools = doc, []
    else:
        return None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"{where}: message {i} is not a chat message (needs a 'role')")
    if not isinstance(tools, list):
        raise ValueError(f"{where}: 'tools' must be a list of tool definitions")
    return messages, tools


def count_command(args: argparse.Namespace) -> int:
    text, where = _read(args.file)
    choice = tokenizer_for(args.model)
    prompt = None if args.text else _as_prompt(text, where)
    result: dict[str, Any] = {
        "model": args.model,
        "tokenizer": choice.encoding,
        "exact": choice.exact,
        "source": choice.source,
        "approximation": choice.approximation,
    }
    if prompt is None:
        tokens = choice.count(text)
        result.update({"kind": "text", "tokens": tokens})
    else:
        messages, tools = prompt
        pc = count_prompt(messages, args.model, tools)
        tokens = pc.tokens
        result.update({"kind": "chat", "chat_format": choice.chat_format, "tokens": tokens,
                       "messages": len(messages), "message_tokens": sum(pc.messages), "tool_tokens": pc.tools,
                       "overhead_tokens": pc.overhead})
        from tokprof.profiler.providers.media import prompt_media

        media = prompt_media(messages, args.model)
        result["media_tokens"] = media.tokens
        if not media.exact:  # an image without bytes, audio, video: the count is an estimate, and says why
            result.update({"exact": False, "source": "estimated"})
            result["approximation"] = "; ".join(x for x in (choice.approximation, media.note) if x)
    price = get_price(args.model, warn=False)
    currency = args.currency or (price.currency if price else "USD")
    cost = usage_cost(Usage.from_provider(input_tokens=tokens), args.model, currency) if price else None
    result["input_cost"] = None if cost is None or cost.amount is None else str(cost.amount)
    result["currency"] = currency
    rates = price.for_prompt(tokens) if price is not None else None
    if price is not None and rates is not None:
        result["price_per_1m_input"] = str(rates.input)
        result["price_currency"] = price.currency
        result["price_source"] = price.source
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    label = "exact" if result["exact"] else "estimated"
    print(clean(f"{tokens:,} tokens  ({result['kind']}, model {args.model}, tokenizer {choice.encoding}, {label})"))
    if result["kind"] == "chat":
        print(f"  messages {result['messages']}: {result['message_tokens']:,} tokens; tools "
              f"{result['tool_tokens']:,}; reply priming/template {result['overhead_tokens']:,}")
    if result["approximation"]:
        print(f"  note: {result['approximation']}")
    if cost is None or cost.amount is None or price is None or rates is None:
        print(f"  input cost: unknown (no price for {args.model!r}; add one with a price override file, "
              f"see tokprof.profiler.providers.prices.load_overrides / $TOKPROF_PRICES)")
    else:
        print(f"  input cost: {_money(cost.amount)} {currency} (at {rates.input} "
              f"{price.currency} per 1M input tokens)")
    return 0


def _money(amount: Any) -> str:
    from decimal import Decimal

    q = Decimal(amount)
    return f"{q:.8f}".rstrip("0").rstrip(".") if q else "0"
