"""Incremental counting: a prompt that starts with a remembered one (compared by value) costs only its new
messages. Message keys, the per-conversation prefix snapshots, and counting the new tail of a prompt
(the engine behind :func:`tokprof.profiler.providers.chat_format.count_messages` and ``count_prompts``)."""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any

from tokprof.profiler.model import Message
from tokprof.profiler.providers.chat_templates import count_message, role_count, role_table, role_tokens
from tokprof.profiler.providers.message_cache import MessageTokenCache
from tokprof.profiler.providers.messages import message_tool_calls, to_openai_message
from tokprof.profiler.providers.encoders import TiktokenEncoder
from tokprof.profiler.providers.tokenizers import TokenizerChoice

_Cache = MessageTokenCache | None


def _message_key(m: Message, choice: TokenizerChoice) -> tuple[tuple, int]:
    """(memo key, characters it holds) of a message under ``choice``: everything that changes its count.
    The same key :func:`_count_new` builds inline for plain OpenAI dicts."""
    content = m.get("content")
    if content is not None and not isinstance(content, str):  # a list of parts: tagged, so never equal to
        from tokprof.profiler.providers.media import rule_key  # images count per model family, not encoding

        content = ("parts", json.dumps(content, sort_keys=True, ensure_ascii=False, default=str),  # a str
                   rule_key(choice.model))
        size = len(content[1])
    else:
        size = len(content) if content else 0
    ck = choice.memo_key
    name = m.get("name")
    if m.get("tool_calls") or m.get("function_call"):
        fast = None if m.get("function_call") else _calls_key(m.get("tool_calls") or ())
        calls = fast if fast is not None else ("general", *message_tool_calls(m))
        return (ck, m.get("role"), content, name, calls), size + sum(len(str(c)) for c in calls)
    return (ck, m.get("role"), content, name), size


def _message_tokens(m: Message, choice: TokenizerChoice, per_message: int, cache: _Cache) -> int:
    key: Any = None
    if cache is not None:
        key, size = _message_key(m, choice)
        hit = cache.get(key)
        if hit is not None:
            return hit
    n = count_message(m, choice, per_message)
    if cache is not None:
        cache.put(key, n, size)
    return n


def _calls_key(calls: Any) -> tuple | None:
    """A hashable key of a message's ``tool_calls``, or ``None`` when they need the general path (not
    plain OpenAI dicts with string arguments)."""
    out = []
    for c in calls:
        fn = c.get("function") if c.__class__ is dict else None
        if fn is None or fn.__class__ is not dict:
            return None
        args = fn.get("arguments")
        if args.__class__ is not str:
            return None
        out.append((fn.get("name"), args))
    return tuple(out)


def count_all(msgs: list[Message], choice: TokenizerChoice, per_message: int, cache: _Cache) -> list[int]:
    """Per-message tokens, with the memo (see :func:`_memo_counts`) or from scratch (``cache=None``)."""
    if cache is None:
        return [_message_tokens(m, choice, per_message, None) for m in msgs]
    if not msgs:
        return []
    totals, k, new = _memo_counts(msgs, choice, per_message, cache)
    if totals is None:
        return new
    counts = [totals[i + 1] - totals[i] for i in range(k)]
    counts.extend(new)
    return counts


_plain_encoders: dict[str, Any] = {}


def _plain_encoder(choice: TokenizerChoice) -> Any:
    """tiktoken's ``encode_ordinary`` for ``choice`` when its messages can be counted inline (the OpenAI
    template over a tiktoken encoding), else ``None``."""
    if choice.chat_format != "openai":
        return None
    plain = _plain_encoders.get(choice.encoding)
    if plain is None:
        enc = choice.encoder
        plain = enc.encoding.encode_ordinary if isinstance(enc, TiktokenEncoder) else None
        if plain is not None:
            _plain_encoders[choice.encoding] = plain
    return plain


def _memo_counts(msgs: list[Message], choice: TokenizerChoice, per_message: int,
                 cache: MessageTokenCache) -> tuple[list[int] | None, int, list[int]]:
    """``(totals, k, counts)``: the running totals of a remembered prompt whose first ``k`` messages equal
    the first ``k`` of ``msgs`` (``None``, ``0``: none), and the counts of ``msgs[k:]``. Remembers
    ``msgs`` for the next call. ``sum(counts of msgs) == totals[k] + sum(counts)``.

    This is incremental counting, once per LLM call:

    1. :func:`find_prefix` — an agent re-sends its history, so the prompt starts with the previous prompt
       of its conversation, remembered as a snapshot (copies of its messages) with running totals.
    2. :func:`_count_new` — the messages after that prefix, looked up one by one in the message memo and
       tokenized on a miss.
    3. :func:`_remember` — the conversation's entry grows by the new messages.
    """
    n = len(msgs)
    hkey, entry, k = find_prefix(msgs, n, choice.memo_key, cache)
    if k == n and entry is not None:
        return entry[1], k, []
    new = msgs[k:] if k else msgs
    counts, copyable, misses, chars = _count_new(new, choice, per_message, cache)
    if misses or (hkey is not None and copyable):
        _remember(cache, hkey, entry, k, new, counts, copyable, misses, chars)
    return (entry[1] if entry is not None else None), k, counts


def _head_key(msgs: list[Message], ck: str) -> tuple | None:
    """The key conversations are found by: their first two messages (a shared system prompt alone would
    put every conversation of an agent under one key). ``None`` when they can't be a key."""
    head = msgs[0]
    second = msgs[1]
    c1 = head.get("content")
    c2 = second.get("content")
    if c1.__class__ is str and (c2 is None or c2.__class__ is str):
        return (ck, head.get("role"), c1, second.get("role"), c2)
    return None


def find_prefix(msgs: list[Message], n: int, ck: str,
                 cache: MessageTokenCache) -> tuple[tuple | None, list | None, int]:
    """``(conversation key, entry, k)``: the remembered ``[snapshot, totals]`` entry whose snapshot equals
    the longest start ``msgs[:k]`` (``None``, ``0``: none). The check is ``msgs[:k] == snapshot``, done in
    C; the snapshot holds *copies* of the messages, so a message dict changed in place after it was counted
    (an old tool output masked, say) fails the check instead of reusing a stale count. Not detected: a
    nested ``tool_calls`` list mutated in place."""
    if n < 2 or cache.max_prefixes <= 0:
        return None, None, 0
    hkey = _head_key(msgs, ck)
    entry = None
    k = 0
    if hkey is not None:
        entries = cache._prefixes.get(hkey)
        if entries:
            for e in entries:  # a list other threads insert into: at worst an entry is seen twice or missed
                snap = e[0]
                sk = len(snap)
                if sk > k:
                    if sk <= n:
                        if (msgs == snap) if sk == n else (msgs[:sk] == snap):
                            entry, k = e, sk
                    elif snap[:n] == msgs:  # an earlier call of a conversation counted again
                        entry, k = e, n
            if entry is not None:
                cache.prefix_hits += k
    return hkey, entry, k


def _count_new(new: list[Message], choice: TokenizerChoice, per_message: int,
               cache: MessageTokenCache) -> tuple[list[int], int, int, int]:
    """``(counts, copyable, misses, chars)``: each message's tokens; how many of ``new`` can be snapshotted
    (up to the first whose content is not a string: a list of parts can change in place); how many texts
    were tokenized and stored, and the characters they hold (for :func:`_remember` to account under the
    lock).

    The OpenAI template (over a tiktoken encoding) is a sum, counted inline: ``3 + role + content`` [+ name
    + 1] [+ per tool call: 3 + name + arguments], each text looked up in the encoding's text memo and
    tokenized on a miss. Written flat: this runs for every new message of every call. Other templates, and
    messages the sum does not cover, go through :func:`_message_tokens` and the message memo."""
    plain = _plain_encoders.get(choice.encoding) if choice.chat_format == "openai" else None
    if plain is None:
        plain = _plain_encoder(choice)
        if plain is None:
            return _count_new_by_message(new, choice, per_message, cache)
    encoding = choice.encoding
    roles = role_tokens.get(encoding)
    if roles is None:
        roles = role_table(encoding)
    texts = cache._texts.get(encoding)
    if texts is None:
        texts = cache._text_memo(encoding)
    lookup = texts.get
    touch = texts.move_to_end
    store = texts.setdefault
    counts: list[int] = []
    append = counts.append
    copyable = len(new)
    hits = misses = chars = 0
    for m in new:
        if m.__class__ is not dict:  # a LangChain message among dicts: counted as its dict, never snapshotted
            if copyable > len(counts):
                copyable = len(counts)
            m = to_openai_message(m)
        get = m.get
        content = get("content")
        role = get("role")
        if role.__class__ is not str or (content is not None and content.__class__ is not str):
            if content is not None and content.__class__ is not str and copyable > len(counts):
                copyable = len(counts)  # a list of parts
            append(_message_tokens(m, choice, per_message, cache))
            continue
        r = roles.get(role)
        c = per_message + (r if r is not None else role_count(choice, role))
        if content:
            t = lookup(content)
            if t is None:
                t = len(plain(content))
                store(content, t)  # a thread that stored it meanwhile stored the same count
                misses += 1
                chars += len(content)
            else:
                try:
                    touch(content)
                except KeyError:  # evicted by another thread meanwhile; the count read is still right
                    pass
                hits += 1
            c += t
        if len(m) != 2 or content is None:  # not just role and content: a name, tool calls...
            name = get("name")
            if name:
                r = roles.get(name) if name.__class__ is str else None
                c += (r if r is not None else role_count(choice, str(name))) + 1
            calls = get("tool_calls")
            if get("function_call") or (calls and not _plain_calls(calls)):
                counts.append(_message_tokens(m, choice, per_message, cache))
                continue
            for call in calls or ():
                fn = call["function"]
                fname = fn.get("name")
                args = fn["arguments"]
                r = roles.get(fname) if fname.__class__ is str else None
                c += 3 + (r if r is not None else role_count(choice, str(fname or "")))
                t = lookup(args)
                if t is None:
                    t = len(plain(args))
                    store(args, t)
                    misses += 1
                    chars += len(args)
                else:
                    hits += 1
                c += t
        append(c)
    cache.hits += hits
    return counts, copyable, misses, chars


def _plain_calls(calls: Any) -> bool:
    """Whether ``tool_calls`` are OpenAI dicts with string arguments (what :func:`_count_new` sums)."""
    for call in calls:
        fn = call.get("function") if call.__class__ is dict else None
        if fn.__class__ is not dict or fn.get("arguments").__class__ is not str:
            return False
    return calls.__class__ is list or calls.__class__ is tuple


def _count_new_by_message(new: list[Message], choice: TokenizerChoice, per_message: int,
                          cache: MessageTokenCache) -> tuple[list[int], int, int, int]:
    """:func:`_count_new` for the templates that are not a sum of texts: each message under its key in the
    message memo (accounted by :meth:`MessageTokenCache.put` itself)."""
    counts: list[int] = []
    copyable = len(new)
    for m in new:
        if m.__class__ is not dict:
            m = to_openai_message(m)
            copyable = min(copyable, len(counts))
        content = m.get("content")
        if content is not None and content.__class__ is not str and copyable > len(counts):
            copyable = len(counts)
        counts.append(_message_tokens(m, choice, per_message, cache))
    return counts, copyable, 0, 0


def _extend_totals(totals: list[int], counts: list[int], n: int) -> None:
    """Append the running totals of ``counts[:n]`` to ``totals``."""
    sums = accumulate(counts[:n] if n < len(counts) else counts, initial=totals[-1])
    next(sums)  # the initial value, already there
    totals.extend(sums)


def _account(cache: MessageTokenCache, misses: int, chars: int) -> None:
    """Count ``misses`` texts of ``chars`` characters stored by :func:`_count_new`, and evict if over the
    bounds (the caller holds the lock)."""
    cache.misses += misses
    cache._entries += misses
    cache._chars += chars
    if cache._entries > cache.max_entries or cache._chars > cache.max_chars:
        cache._evict()


def _remember(cache: MessageTokenCache, hkey: tuple | None, entry: list | None, k: int, new: list[Message],
              counts: list[int], copyable: int, misses: int, chars: int) -> None:
    """Account the messages :func:`_count_new` stored, and remember the prompt ``snapshot[:k] + new``: the
    conversation's entry grows in place when its snapshot is exactly the ``k`` messages verified, else a
    new entry starts from its first ``k``. Entries are only ever appended to (totals before snapshot, so a
    reader that verified ``k`` messages finds ``k + 1`` totals), never truncated."""
    copies = [m.copy() for m in (new if copyable == len(new) else new[:copyable])] if hkey is not None else None
    with cache._lock:
        if misses:
            _account(cache, misses, chars)
        if not copies:
            return
        prefixes = cache._prefixes
        if entry is not None and len(entry[0]) == k:
            _extend_totals(entry[1], counts, copyable)
            entry[0].extend(copies)
        else:
            entries = prefixes.get(hkey)
            if entries is None:
                entries = prefixes[hkey] = []
            if entry is not None:
                snap, totals = entry[0][:k], entry[1][:k + 1]
            else:
                snap, totals = [], [0]
            _extend_totals(totals, counts, copyable)
            snap.extend(copies)
            entries.insert(0, [snap, totals])
            del entries[MessageTokenCache._PER_HEAD:]
        try:
            prefixes.move_to_end(hkey)
        except KeyError:  # dropped by another thread meanwhile: the entry is simply forgotten
            pass
        while len(prefixes) > cache.max_prefixes:
            prefixes.popitem(last=False)


def finish_chain(chain: list[Any], totals: list[int], choice: TokenizerChoice, per_message: int,
                  memo: MessageTokenCache) -> None:
    """Count a chain of :func:`count_prompts` (its new messages in one pass) and append each of its prompts'
    message tokens to ``totals``. A batch leaves no conversation snapshot behind (a recorded run is rarely
    counted twice, and when it is, its texts are all in the memo): copying every message of every
    conversation would cost more than it could save."""
    entry, k, new, upto = chain
    counts, copyable, misses, chars = _count_new(new, choice, per_message, memo) if new else ([], 0, 0, 0)
    running = list(accumulate(counts, initial=entry[1][k] if entry is not None else 0))
    totals += map(running.__getitem__, upto)  # a prompt's messages: the chain's start + `upto` new ones
    if misses:
        with memo._lock:
            _account(memo, misses, chars)


def openai_total(msgs: list[Message], choice: TokenizerChoice, memo: _Cache) -> int:
    """Prompt tokens of ``msgs`` under the OpenAI template (3 per message, 3 to prime the reply)."""
    if memo is None:
        return sum(count_all(msgs, choice, 3, None)) + 3
    if not msgs:
        return 3
    totals, k, new = _memo_counts(msgs, choice, 3, memo)
    return (totals[k] if totals is not None else 0) + sum(new) + 3
