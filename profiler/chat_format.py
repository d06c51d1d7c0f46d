"""Count a chat prompt (messages + tool definitions) the way each provider bills it, incrementally.

Three templates:

* ``openai`` — OpenAI's documented accounting (openai-cookbook, "How to count tokens with tiktoken"): every
  message costs ``tokens_per_message`` (3) plus the tokens of its role and content, a ``name`` costs its
  tokens plus 1, and every reply is primed with 3 tokens. Tool definitions follow the cookbook's
  formula (``func_init`` 7 for o200k models / 10 for cl100k models, 3 per property block and property,
  enum items 3 each minus 3, 12 at the end). The same constants hold for gpt-4.1: on 524 real gpt-4.1
  calls of the τ²-bench corpus our count equals the recorded ``prompt_tokens`` exactly.
  Tool calls inside assistant messages (not documented by OpenAI) are counted as their name + arguments
  + 3, tool results as an ordinary message.
* ``chatml`` — Qwen: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, ``<|im_start|>assistant\\n``
  to prime; tools rendered into the system message, tool calls as ``<tool_call>`` JSON and tool results
  as ``<tool_response>`` blocks inside a user turn (the Qwen2.5/Qwen3 chat template).
* ``deepseek`` — DeepSeek V3: ``<｜begin▁of▁sentence｜>{system}<｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>``,
  tool calls / outputs wrapped in DeepSeek's tool special tokens.

**Incremental counting.** An agent re-sends its whole history on every call, so counting each call from
scratch is quadratic in the run length. Two memos, both in a bounded, thread-safe
:class:`MessageTokenCache`: (1) each message's tokens under its (tokenizer, template, role, content, name,
tool calls) — an LRU capped in entries and in characters held; (2) per conversation, snapshots of the
last prompt and its per-message counts, so a prompt that starts with a remembered one (compared by
value) only looks at its new messages. Counting a run costs about its unique content once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Literal

from profiler.model import Message
from profiler.tokenizers import TiktokenEncoder, TokenizerChoice, get_encoder, tokenizer_for

# ---------------------------------------------------------------------------------------------------
# the memo
# ---------------------------------------------------------------------------------------------------


class MessageTokenCache:
    """A bounded LRU map ``message key -> tokens``, safe to share between threads.

    Keys hold the message's strings themselves: Python caches a string's hash on the object, so looking up
    a message an agent re-sends (the same string objects, call after call) costs O(1) whatever its length,
    and equality is exact (no collision risk). Memory is bounded by ``max_entries`` and by ``max_chars``,
    the total length of the strings the keys keep alive (strings the agent's own history holds anyway).
    """

    def __init__(self, max_entries: int = 100_000, max_chars: int = 64_000_000, max_prefixes: int = 256) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_prefixes = max_prefixes
        self._data: OrderedDict[Any, tuple[int, int]] = OrderedDict()
        self._chars = 0
        self._prefixes: OrderedDict[Any, list[tuple[list, tuple]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.prefix_hits = 0
        """Messages whose count came from a verified re-sent prefix (not looked up one by one)."""

    # ---- re-sent prefixes ------------------------------------------------------------------------
    # An agent re-sends its history on every call: the new prompt starts with the previous prompt of
    # the same conversation. Per conversation we remember ``[snapshot, counts, running totals]``: shallow
    # copies of the last prompt's messages, their counts and the sums of the first i counts. A new prompt
    # whose start *equals* (==, compared in C; identical strings compare in O(1)) a snapshot reuses its
    # counts wholesale, and only the messages after it are looked up one by one (the lookup and update
    # are inlined in the module's ``_resolve``, the hot path). The copies make the check immune to a
    # message dict changed in place after it was counted (content replaced, say). Not detected: a nested
    # ``tool_calls`` list mutated in place. Conversations are found by their first two messages; a few
    # are kept per key (agents often share a system prompt). An entry grows in place as its
    # conversation does.
    _PER_HEAD = 8

    def get(self, key: Any) -> int | None:
        # Lock-free read: single OrderedDict operations are atomic under the GIL (keys are tuples of
        # strings, so no Python-level __eq__/__hash__ runs); the lock guards put's compound update.
        # Counters are statistics and may undercount under contention.
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile; the value we read is still right
            pass
        self.hits += 1
        return entry[0]

    def put(self, key: Any, value: int, size: int = 0) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._chars -= old[1]
            self._data[key] = (value, size)
            self._chars += size
            while self._data and (len(self._data) > self.max_entries or self._chars > self.max_chars):
                _, (_, freed) = self._data.popitem(last=False)
                self._chars -= freed

    def _put_many(self, items: list[tuple[Any, int, int]]) -> None:
        """:meth:`put` of several ``(key, value, size)`` under one lock."""
        data = self._data
        with self._lock:
            chars = self._chars
            for key, value, size in items:
                old = data.pop(key, None)
                if old is not None:
                    chars -= old[1]
                data[key] = (value, size)
                chars += size
            while data and (len(data) > self.max_entries or chars > self.max_chars):
                _, (_, freed) = data.popitem(last=False)
                chars -= freed
            self._chars = chars

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._prefixes.clear()
            self._chars = 0
            self.hits = self.misses = self.prefix_hits = 0

    @property
    def chars(self) -> int:
        """Total length of the strings held by the keys."""
        return self._chars

    def __len__(self) -> int:
        return len(self._data)


default_cache = MessageTokenCache()
"""The process-wide memo used unless a call passes its own (or ``cache=None`` to count from scratch)."""


def _digest(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, str):
            b = p.encode("utf-8", "surrogatepass")
        elif isinstance(p, bytes):
            b = p
        else:
            b = json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.digest()


# ---------------------------------------------------------------------------------------------------
# message normalisation (OpenAI dicts and LangChain messages)
# ---------------------------------------------------------------------------------------------------
_LC_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool", "function": "function",
             "developer": "developer", "AIMessageChunk": "assistant", "HumanMessageChunk": "user",
             "SystemMessageChunk": "system", "ToolMessageChunk": "tool", "FunctionMessageChunk": "function"}


def to_openai_message(m: Any) -> Message:
    """An OpenAI-format dict for an OpenAI dict or a LangChain ``BaseMessage``."""
    if isinstance(m, dict):
        return m
    mtype = getattr(m, "type", None)
    if mtype is None or not hasattr(m, "content"):
        raise TypeError(f"cannot count a {type(m).__name__}: expected an OpenAI message dict or a LangChain "
                        f"BaseMessage")
    role = getattr(m, "role", None) if mtype == "chat" else _LC_ROLES.get(mtype, mtype)
    out: Message = {"role": role or "user", "content": m.content}
    name = getattr(m, "name", None)
    if name:
        out["name"] = name
    calls = getattr(m, "tool_calls", None)
    if calls:
        out["tool_calls"] = [
            {"id": c.get("id") or "", "type": "function",
             "function": {"name": c.get("name") or "", "arguments": json.dumps(c.get("args") or {})}}
            for c in calls
        ]
    if role == "tool":
        out["tool_call_id"] = getattr(m, "tool_call_id", "")
    return out


def content_text(content: Any) -> tuple[str, int]:
    """(the text of a message content, number of non-text parts such as images)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if isinstance(content, list):
        texts, other = [], 0
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                other += 1
        return "".join(texts), other
    return str(content), 0


IMAGE_TOKENS_ESTIMATE = 85
"""Tokens per non-text part (OpenAI's low-detail image price); an estimate: the real cost depends on size."""


def _tool_calls(m: Message) -> list[tuple[str, str]]:
    out = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or c
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args if args is not None else {}, ensure_ascii=False)
        out.append((str(fn.get("name") or ""), args))
    fc = m.get("function_call")
    if fc:
        out.append((str(fc.get("name") or ""), str(fc.get("arguments") or "")))
    return out


# ---------------------------------------------------------------------------------------------------
# per-template message counts
# ---------------------------------------------------------------------------------------------------
def _openai_tokens_per_message(model: str) -> int:
    """``<|start|>{role}<|message|>...<|end|>``: 3 tokens around each message besides its role and content
    (the cookbook's constant for every current OpenAI chat model)."""
    return 3


_role_tokens: dict[tuple[str, str], int] = {}


def _role_count(choice: TokenizerChoice, role: str) -> int:
    """Tokens of a role, a name or a function name: few distinct short values, memoized (up to 4096)."""
    key = (choice.encoding, role)
    n = _role_tokens.get(key)
    if n is None:
        n = len(choice.encoder.encode(role))
        if len(_role_tokens) < 4096 and len(role) <= 128:
            _role_tokens[key] = n
    return n


def _count_openai(m: Message, choice: TokenizerChoice, per_message: int) -> int:
    enc = choice.encoder
    text, others = content_text(m.get("content"))
    n = per_message + _role_count(choice, str(m.get("role") or "")) + (len(enc.encode(text)) if text else 0)
    n += others * IMAGE_TOKENS_ESTIMATE
    name = m.get("name")
    if name:
        n += _role_count(choice, str(name)) + 1
    for fname, args in _tool_calls(m):
        n += 3 + _role_count(choice, fname) + len(enc.encode(args))
    return n


def _chatml_body(m: Message) -> tuple[str, str]:
    """(role as rendered, body text) of a message in Qwen's chat template."""
    role = str(m.get("role") or "user")
    text, _ = content_text(m.get("content"))
    if role == "tool" or role == "function":
        return "user", f"<tool_response>\n{text}\n</tool_response>"
    calls = _tool_calls(m)
    for fname, args in calls:
        try:
            args_obj: Any = json.loads(args)
        except (ValueError, TypeError):
            args_obj = args
        text += "\n<tool_call>\n" + json.dumps({"name": fname, "arguments": args_obj}, ensure_ascii=False) \
            + "\n</tool_call>"
    if role == "developer":
        role = "system"
    return role, text


def _count_chatml(m: Message, choice: TokenizerChoice) -> int:
    enc = choice.encoder
    role, body = _chatml_body(m)
    _, others = content_text(m.get("content"))
    # <|im_start|> role \n ... <|im_end|> \n  — wrapper tokens counted with specials, body as plain text.
    wrapper = len(enc.encode(f"<|im_start|>{role}\n", allow_special=True)) + \
        len(enc.encode("<|im_end|>\n", allow_special=True))
    return wrapper + len(enc.encode(body)) + others * IMAGE_TOKENS_ESTIMATE


_DS_TOOL_CALL = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{args}\n```<｜tool▁call▁end｜>"


def _count_deepseek(m: Message, choice: TokenizerChoice) -> int:
    enc = choice.encoder
    role = str(m.get("role") or "user")
    text, others = content_text(m.get("content"))
    n = len(enc.encode(text)) + others * IMAGE_TOKENS_ESTIMATE

    def special(s: str) -> int:
        return len(enc.encode(s, allow_special=True))

    if role in ("system", "developer"):
        return n  # the system prompt follows <｜begin▁of▁sentence｜> with no wrapper
    if role == "user":
        return n + special("<｜User｜>")
    if role in ("tool", "function"):
        return n + special("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜><｜tool▁output▁end｜><｜tool▁outputs▁end｜>")
    # assistant
    n += special("<｜Assistant｜><｜end▁of▁sentence｜>")
    calls = _tool_calls(m)
    if calls:
        n += special("<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>")
        for fname, args in calls:
            n += len(enc.encode(_DS_TOOL_CALL.format(name=fname, args=args), allow_special=True))
    return n


# ---------------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------------
def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function") if isinstance(tool.get("function"), dict) else tool


def _count_tools_openai(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    """The cookbook's formula for tool definitions (exact for its flat-parameter examples)."""
    enc = choice.encoder
    func_init = 7 if choice.encoding == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    for tool in tools:
        fn = _function(tool)
        n += func_init
        desc = str(fn.get("description") or "")
        if desc.endswith("."):
            desc = desc[:-1]
        n += len(enc.encode(f"{fn.get('name', '')}:{desc}"))
        props = ((fn.get("parameters") or {}).get("properties") or {})
        if props:
            n += prop_init
            for key, spec in props.items():
                spec = spec if isinstance(spec, dict) else {}
                n += prop_key
                if "enum" in spec:
                    n += enum_init
                    for item in spec["enum"]:
                        n += enum_item + len(enc.encode(str(item)))
                p_desc = str(spec.get("description") or "")
                if p_desc.endswith("."):
                    p_desc = p_desc[:-1]
                n += len(enc.encode(f"{key}:{spec.get('type', '')}:{p_desc}"))
                # Nested schemas are not covered by the cookbook; count their JSON (an estimate).
                nested = {k: v for k, v in spec.items() if k in ("properties", "items", "anyOf", "oneOf")}
                if nested:
                    n += len(enc.encode(json.dumps(nested, ensure_ascii=False)))
    return n + func_end if tools else 0


_QWEN_TOOLS_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
_QWEN_TOOLS_TAIL = ("\n</tools>\n\nFor each function call, return a json object with function name and "
                    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
                    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>")


def _count_tools_chatml(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    enc = choice.encoder
    text = _QWEN_TOOLS_HEAD + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools) + _QWEN_TOOLS_TAIL
    return len(enc.encode(text))


_DS_TOOLS_HEAD = ("\n\n## Tools\nYou have access to the following tools:\n")
_DS_TOOLS_TAIL = ("\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n<｜tool▁calls▁begin｜>"
                  "<｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>"
                  "{additional_tool_calls}<｜tool▁calls▁end｜>\n")


def _count_tools_deepseek(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    enc = choice.encoder
    parts = [_DS_TOOLS_HEAD]
    for t in tools:
        fn = _function(t)
        parts.append(f"\n### {fn.get('name', '')}\nDescription: {fn.get('description', '')}\n\n"
                     f"Parameters: {json.dumps(fn.get('parameters') or {}, ensure_ascii=False)}\n")
    return len(enc.encode("".join(parts))) + len(enc.encode(_DS_TOOLS_TAIL, allow_special=True))


# ---------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptCount:
    """The tokens of one prompt, itemised."""

    tokens: int
    messages: tuple[int, ...]
    """Tokens of each message, template overhead included."""
    tools: int
    overhead: int
    """Per-prompt constant: reply priming, begin-of-sequence, a system wrapper added for tools."""
    choice: TokenizerChoice

    @property
    def source(self) -> Literal["counted", "estimated"]:
        return self.choice.source


_Cache = MessageTokenCache | None
_DEFAULT: Any = object()


def _message_key(m: Message, choice: TokenizerChoice, per_message: int) -> tuple[tuple, int]:
    """(memo key, characters it holds) of a message under ``choice``: everything that changes its count."""
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        content = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    ck = (choice.encoding, choice.chat_format, per_message)
    name = m.get("name")
    if m.get("tool_calls") or m.get("function_call"):
        # Same key as _count_all's fast path when the calls are plain OpenAI dicts with string arguments.
        fast = _calls_key(m)
        calls = fast if fast is not None else ("general", *_tool_calls(m))
        key: tuple = (ck, m.get("role"), content, name, calls)
        return key, (len(content) if content else 0) + sum(len(str(c)) for c in calls)
    return (ck, m.get("role"), content, name), len(content) if content else 0


def _message_tokens(m: Message, choice: TokenizerChoice, per_message: int, cache: _Cache) -> int:
    key: Any = None
    if cache is not None:
        key, size = _message_key(m, choice, per_message)
        hit = cache.get(key)
        if hit is not None:
            return hit
    n = _count_message(m, choice, per_message)
    if cache is not None:
        cache.put(key, n, size)
    return n


def _count_message(m: Message, choice: TokenizerChoice, per_message: int) -> int:
    """Tokens of one message under ``choice``'s template (no memo)."""
    if choice.chat_format == "chatml":
        return _count_chatml(m, choice)
    if choice.chat_format == "deepseek":
        return _count_deepseek(m, choice)
    return _count_openai(m, choice, per_message)


def _calls_key(m: Message) -> tuple | None:
    """A hashable key of a message's tool calls, or ``None`` when they need the general path."""
    out = []
    for c in m.get("tool_calls") or ():
        fn = c.get("function") if c.__class__ is dict else None
        if fn is None or fn.__class__ is not dict:
            return None
        args = fn.get("arguments")
        if args.__class__ is not str:
            return None
        out.append((fn.get("name"), args))
    if m.get("function_call"):
        return None
    return tuple(out)


def _count_all(msgs: list[Message], choice: TokenizerChoice, per_message: int, cache: _Cache) -> list[int]:
    """Per-message tokens. With a memo, a re-sent prefix of the prompt is reused wholesale and only the
    messages after it are looked up one by one (see :func:`_resolve`); ``cache=None`` counts from scratch."""
    if cache is None:
        return [_message_tokens(m, choice, per_message, None) for m in msgs]
    if not msgs:
        return []
    entry, k, new = _resolve(msgs, choice, per_message, cache)
    if entry is None:
        return new
    counts = entry[1][:k]
    counts.extend(new)
    return counts


def _memo_total(msgs: list[Message], choice: TokenizerChoice, per_message: int, cache: MessageTokenCache) -> int:
    """``sum(_count_all(msgs, ...))`` with a memo, without building the per-message list: the re-sent prefix
    costs one lookup of its running total."""
    if not msgs:
        return 0
    entry, k, new = _resolve(msgs, choice, per_message, cache)
    if entry is None:
        return sum(new)
    return entry[2][k] + sum(new)


def _resolve(msgs: list[Message], choice: TokenizerChoice, per_message: int,
             cache: MessageTokenCache) -> tuple[list | None, int, list[int]]:
    """(the remembered conversation entry ``[snapshot, counts, running totals]`` whose first ``k`` messages
    equal the start of ``msgs`` (``None``: none), ``k``, the counts of ``msgs[k:]``), and remember ``msgs``.

    This is the hot loop of incremental counting, run once per LLM call of a whole run: an agent re-sends
    its history, so the new prompt starts with the previous prompt of the same conversation. Per
    conversation (found by its first two messages: a shared system prompt alone would put every conversation
    of an agent under one key) we keep shallow
    copies of the last prompt's messages with their counts and running totals; a prompt whose start *equals*
    a snapshot (==, compared in C; identical strings compare in O(1)) reuses its counts wholesale. The
    copies make the check immune to a message dict changed in place after it was counted. Only the
    messages after the prefix are looked up one by one (:func:`_count_each`). Everything is inlined (no
    per-call method calls, one lock): this path is most of what counting a run costs besides tokenizing.
    """
    n = len(msgs)
    ck = (choice.encoding, choice.chat_format, per_message)
    key = None
    head = msgs[0]
    c1 = head.get("content")
    if n > 1 and c1.__class__ is str:
        second = msgs[1]
        c2 = second.get("content")
        if c2 is None or c2.__class__ is str:
            key = (ck, head.get("role"), c1, second.get("role"), c2)
    entry = None
    k = 0
    if key is not None and cache.max_prefixes > 0:
        entries = cache._prefixes.get(key)
        if entries:
            for e in entries[:]:
                snap = e[0]
                sk = len(snap)
                if k < sk <= n and (msgs == snap if sk == n else msgs[:sk] == snap):
                    entry, k = e, sk
                elif sk > n > k and snap[:n] == msgs:
                    # an earlier call of a conversation counted again (a stored run re-read): reuse its start
                    entry, k = e, n
        else:
            entries = None
        if entry is not None:
            cache.prefix_hits += k
            if k == n:
                return entry, k, []
        new = _count_each(msgs[k:] if k else msgs, choice, per_message, cache, ck)
        # remember msgs: the entry grows by the new messages (or a new entry starts from its first k)
        copies = []
        for m in (msgs[k:] if k else msgs):
            c = m.get("content")
            if c is not None and c.__class__ is not str:
                break  # a list of parts can change in place: remember only the part before it
            copies.append(m.copy())
        if copies:
            added = new[:len(copies)] if len(copies) < len(new) else new
            with cache._lock:
                if entry is not None and len(entry[0]) == k:
                    # the conversation grew: extend its entry in place. Counts and totals first, snapshot
                    # last: a reader that verified k messages of the snapshot finds their counts.
                    counts, totals = entry[1], entry[2]
                    t = totals[-1]
                    for c in added:
                        t += c
                        totals.append(t)
                    counts.extend(added)
                    entry[0].extend(copies)
                    entries = cache._prefixes.get(key)
                else:
                    entries = cache._prefixes.get(key)
                    if entries is None:
                        entries = cache._prefixes[key] = []
                    if entry is not None:
                        snap, counts, totals = entry[0][:k], entry[1][:k], entry[2][:k + 1]
                    else:
                        snap, counts, totals = [], [], [0]
                    t = totals[-1]
                    for c in added:
                        t += c
                        totals.append(t)
                    counts.extend(added)
                    snap.extend(copies)
                    entries.insert(0, [snap, counts, totals])
                    del entries[MessageTokenCache._PER_HEAD:]
                if entries is not None:
                    cache._prefixes.move_to_end(key)
                while len(cache._prefixes) > cache.max_prefixes:
                    cache._prefixes.popitem(last=False)
        return entry, k, new
    return None, 0, _count_each(msgs, choice, per_message, cache, ck)


_plain_encoders: dict[str, Any] = {}


def _count_each(msgs: list[Message], choice: TokenizerChoice, per_message: int, cache: "MessageTokenCache",
                ck: tuple) -> list[int]:
    """Counts of ``msgs`` looked up one by one in the message memo; misses are tokenized and stored (under
    one lock for the whole batch). The key is built inline (same as :func:`_message_key`'s for plain
    OpenAI dicts), and OpenAI-template messages of plain strings are counted inline too."""
    data = cache._data
    lookup = data.get
    touch = data.move_to_end
    plain = _plain_encoders.get(choice.encoding) if choice.chat_format == "openai" else None
    if plain is None and choice.chat_format == "openai":
        enc = choice.encoder
        if isinstance(enc, TiktokenEncoder):
            plain = _plain_encoders[choice.encoding] = enc.encoding.encode_ordinary
    roles = _role_tokens
    encoding = choice.encoding
    out: list[int] = []
    append = out.append
    fresh: list[tuple[Any, int, int]] = []
    hits = 0
    for m in msgs:
        get = m.get
        content = get("content")
        role = get("role")
        name = get("name")
        calls = get("tool_calls")
        ckey = None
        if calls:
            ckey = _calls_key(m)
            key: Any = None if ckey is None else (ck, role, content, name, ckey)
        elif get("function_call"):
            key = None
        else:
            key = (ck, role, content, name)
        if key is None or not (content is None or content.__class__ is str):
            append(_message_tokens(m, choice, per_message, cache))  # the general path
            continue
        entry = lookup(key)
        if entry is not None:
            try:
                touch(key)
            except KeyError:  # evicted by another thread meanwhile; the value read is still right
                pass
            hits += 1
            append(entry[0])
            continue
        size = len(content) if content else 0
        if plain is not None and role.__class__ is str:
            # _count_openai inlined: <|start|>role<|message|>content<|end|> [+ name + 1] [+ calls]
            r = roles.get((encoding, role))
            n = per_message + (r if r is not None else _role_count(choice, role))
            if content:
                n += len(plain(content))
            if name:
                name = str(name)
                r = roles.get((encoding, name))
                n += (r if r is not None else _role_count(choice, name)) + 1
            if ckey:
                for fname, args in ckey:
                    fname = str(fname or "")
                    r = roles.get((encoding, fname))
                    n += 3 + (r if r is not None else _role_count(choice, fname)) + len(plain(args))
                    size += len(fname) + len(args)
        else:
            n = _count_message(m, choice, per_message)
            if ckey:
                size += sum(len(a) + len(b) for a, b in ckey)
        fresh.append((key, n, size))
        append(n)
    if fresh:
        cache._put_many(fresh)
    cache.hits += hits
    cache.misses += len(fresh)
    return out


def count_tools(tools: Iterable[dict[str, Any]] | None, model: str, *, cache: Any = _DEFAULT) -> int:
    """Tokens the tool definitions add to a prompt for ``model``."""
    tools = list(tools or [])
    if not tools:
        return 0
    choice = tokenizer_for(model)
    cache = default_cache if cache is _DEFAULT else cache
    key = None
    if cache is not None:
        key = ("tools", choice.encoding, choice.chat_format, _digest(tools))
        hit = cache.get(key)
        if hit is not None:
            return hit
    if choice.chat_format == "chatml":
        n = _count_tools_chatml(tools, choice)
    elif choice.chat_format == "deepseek":
        n = _count_tools_deepseek(tools, choice)
    else:
        n = _count_tools_openai(tools, choice)
    if cache is not None and key is not None:
        cache.put(key, n)
    return n


def count_prompt(messages: Iterable[Any], model: str, tools: Iterable[dict[str, Any]] | None = None, *,
                 cache: Any = _DEFAULT) -> PromptCount:
    """Count ``messages`` (OpenAI dicts or LangChain messages) plus ``tools`` as ``model``'s provider bills
    them. ``cache``: the memo to use (default: the process-wide one; ``None``: count from scratch)."""
    cache = default_cache if cache is _DEFAULT else cache
    choice = tokenizer_for(model)
    msgs = [m if m.__class__ is dict else to_openai_message(m) for m in messages]
    tool_list = list(tools) if tools else []
    per_message = _openai_tokens_per_message(model) if choice.chat_format == "openai" else 0
    counts = tuple(_count_all(msgs, choice, per_message, cache))
    tool_tokens = count_tools(tool_list, model, cache=cache) if tool_list else 0
    if choice.chat_format == "openai":
        return PromptCount(sum(counts) + tool_tokens + 3, counts, tool_tokens, 3, choice)
    enc = get_encoder(choice.encoding)
    if choice.chat_format == "chatml":
        overhead = len(enc.encode("<|im_start|>assistant\n", allow_special=True))
        if tool_list and not any(m.get("role") in ("system", "developer") for m in msgs[:1]):
            overhead += len(enc.encode("<|im_start|>system\n", allow_special=True)) + \
                len(enc.encode("<|im_end|>\n", allow_special=True))
    elif choice.chat_format == "deepseek":
        overhead = len(enc.encode("<｜begin▁of▁sentence｜><｜Assistant｜>", allow_special=True))
    else:
        overhead = 3  # every reply is primed with <|start|>assistant<|message|>
    return PromptCount(sum(counts) + tool_tokens + overhead, counts, tool_tokens, overhead, choice)


def count_messages(messages: Iterable[Any], model: str, tools: Iterable[dict[str, Any]] | None = None, *,
                   cache: Any = _DEFAULT) -> int:
    """Prompt tokens of ``messages`` + ``tools`` for ``model`` (see :func:`count_prompt`)."""
    choice = tokenizer_for(model)
    if tools or choice.chat_format != "openai":
        return count_prompt(messages, model, tools, cache=cache).tokens
    # The common case without the itemised result (this runs once per LLM call of a whole run).
    memo = default_cache if cache is _DEFAULT else cache
    if messages.__class__ is list:
        try:  # a list of OpenAI dicts as is: no copy (a LangChain message in it fails .get: convert)
            if memo is None:
                return sum(_count_all(messages, choice, 3, None)) + 3  # type: ignore[arg-type]
            return _memo_total(messages, choice, 3, memo) + 3  # type: ignore[arg-type]
        except AttributeError:
            pass
    msgs = [m if m.__class__ is dict else to_openai_message(m) for m in messages]
    if memo is None:
        return sum(_count_all(msgs, choice, 3, None)) + 3
    return _memo_total(msgs, choice, 3, memo) + 3


def count_completion(output: Any, model: str) -> int:
    """Tokens of a model's reply (text, an OpenAI message dict or a LangChain message): its content and
    tool calls, without prompt-side overhead. Hidden reasoning tokens are not visible and not included."""
    choice = tokenizer_for(model)
    enc = choice.encoder
    if output is None:
        return 0
    if isinstance(output, str):
        return len(enc.encode(output))
    m = to_openai_message(output)
    text, others = content_text(m.get("content"))
    n = len(enc.encode(text)) + others * IMAGE_TOKENS_ESTIMATE
    for fname, args in _tool_calls(m):
        n += len(enc.encode(fname)) + len(enc.encode(args)) + (3 if choice.chat_format == "openai" else 0)
    return n
