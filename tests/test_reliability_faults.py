"""Never break the host (issue #9, point 1): faults injected into every internal stage of tokprof.

Each case runs the same small agent twice: once without tokprof (the reference), once inside
``profile(..., save=...)`` with one internal stage broken. The agent must return exactly what it returned
without tokprof (or raise exactly the same exception), and tokprof must log the failure once: the agent
runs three times under the fault and the number of tokprof internal-error lines is the number of distinct
stages that failed (1 for almost every case, 0 where the fault is handled by design, e.g. an argument
whose ``repr`` raises is recorded as ``<unrepresentable ...>``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import itertools
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

import tokprof.profiler.integrations  # noqa: F401  (registers the LangChain handler and SDK hooks on profile())
from tokprof.profiler import hooks, load_run, profile, record_llm_call, span, trace
from tokprof.profiler import run_writer
from tokprof.profiler import store as store_mod
from tokprof.profiler.hooks import reset_internal_errors as _reset_internal_errors
from tests.reliability_support import EchoChatModel, internal_error_records

BIG = 50 * 1024 * 1024  # the 50 MB prompt


# ---------------------------------------------------------------------------------------------------
# the host agent
# ---------------------------------------------------------------------------------------------------
@trace
def plan(task: str) -> str:
    return f"plan for {task}"


@trace(kind="tool")
def search(query: str, k: int = 3) -> list[dict[str, Any]]:
    return [{"doc": i, "query": query} for i in range(k)]


@trace
async def async_step(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


@trace
def numbers(n: int):
    yield from range(n)


def standard_agent() -> Any:
    """A little of everything a profile records: traced sync/async/generator calls, a span block,
    a model call with partial usage (so local counting runs), a LangChain chat model call."""
    p = plan("refund order 42")
    hits = search("refund policy", k=2)
    with span("retrieve", kind="retriever"):
        docs = [h["doc"] for h in hits]
    record_llm_call(model="gpt-4o", provider="openai",
                    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": p}],
                    output="refund approved", usage={"output_tokens": 3})
    record_llm_call(model="claude-sonnet-4", messages=[{"role": "user", "content": "and now?"}], output="done")
    reply = EchoChatModel().invoke("hello there")
    a = asyncio.run(async_step(41))
    g = list(numbers(3))
    return (p, hits, docs, reply.content, a, g)


# ---------------------------------------------------------------------------------------------------
# the faults
# ---------------------------------------------------------------------------------------------------
def raiser(exc: BaseException) -> Callable[..., Any]:
    def f(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return f


class DevFullWriter:
    """A run writer whose file is /dev/full: every flush fails with the kernel's real ENOSPC."""

    @staticmethod
    def install(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        orig = run_writer.open_private

        def open_full(path: Path) -> int:
            import os

            if str(path).endswith(".jsonl"):
                return os.open("/dev/full", os.O_WRONLY)
            return orig(path)

        monkeypatch.setattr(run_writer, "open_private", open_full)  # the binding the run writer calls


def _assert_surrogate_kept(path: Path) -> None:
    back = load_run(path)
    assert back.complete
    assert any("\ud800" in json.dumps(s.attributes or {}, ensure_ascii=False) for s in back.spans)


def _assert_incomplete(path: Path) -> None:
    back = load_run(path)
    assert not back.complete and back.spans == []


def fail_after_open(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """The header is written, then the disk fills up: every later write fails with ENOSPC."""
    orig = store_mod.RunWriter.open.__func__

    def open_(cls: Any, run: Any, folder: Any = None) -> Any:
        w = orig(cls, run, folder)
        w._fh = FailingFile(w._fh)
        return w

    monkeypatch.setattr(store_mod.RunWriter, "open", classmethod(open_))


def fail_at_close(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    orig = store_mod.RunWriter.close

    def close(self: Any, run: Any) -> None:
        self._fh = FailingFile(self._fh)
        orig(self, run)

    monkeypatch.setattr(store_mod.RunWriter, "close", close)


class FailingFile:
    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, s: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self._fh.close()


def circular_message() -> dict[str, Any]:
    m: dict[str, Any] = {"role": "user", "content": "hi"}
    m["self"] = m
    return m


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRepr)

    __hash__ = object.__hash__


class NonStrRepr:
    def __repr__(self) -> Any:  # type: ignore[override]
        return 42

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NonStrRepr)

    __hash__ = object.__hash__


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 10_000_000

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HugeRepr)

    __hash__ = object.__hash__


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class RaisingHandler(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        raise RuntimeError("log handler exploded")


@dataclass
class Fault:
    id: str
    setup: Callable[[pytest.MonkeyPatch, Path], None] = lambda mp, tmp: None
    agent: Callable[[], Any] = standard_agent
    logs: int | None = 1
    """Internal-error lines expected (each failing stage once); ``None``: not observable (logging broken)."""
    save: bool = True
    check: Callable[[Any, Path], None] | None = None
    """Extra check on the profile object after the block (the run is still usable, etc.)."""
    options: dict[str, Any] = field(default_factory=dict)
    repeat: int = 3


def _patch(target: str, value: Any) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """Replace ``target`` (``module.attr`` or ``module.Class.attr``) and, for a module-level function, every
    binding of the same function that another tokprof module imported by name (``from m import f``)."""
    def setup(mp: pytest.MonkeyPatch, tmp: Path) -> None:
        import importlib

        mod_name, _, attr = target.rpartition(".")
        try:
            owner: Any = importlib.import_module(mod_name)
        except ImportError:  # module.Class.attr
            owner = None
        original = getattr(owner, attr, None) if owner is not None else None
        mp.setattr(target, value)
        if owner is None or original is None:
            return
        for name, mod in list(sys.modules.items()):
            if name.startswith("tokprof.") and mod is not owner and getattr(mod, attr, None) is original:
                mp.setattr(mod, attr, value)
    return setup


def _add_hook(kind: str, fn: Callable[..., Any]) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """Register ``fn`` through the public hook registry (``kind``: ``enter``/``exit``/``llm``); removed after
    the test by the module's cleanup list."""
    register = {"enter": hooks.on_profile_enter, "exit": hooks.on_profile_exit, "llm": hooks.on_llm_finish}[kind]

    def setup(mp: pytest.MonkeyPatch, tmp: Path) -> None:
        register(fn)
        _cleanups.append(lambda: hooks.remove_hook(fn))
    return setup


def _exporter_exit_hook(p: Any) -> None:
    from tokprof.profiler.interchange import otlp

    otlp.export_run(p.run)


def _export_broken(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    from tokprof.profiler.interchange import otlp_export  # where export_run finds export_span

    mp.setattr(otlp_export, "export_span", raiser(RuntimeError("exporter down")))
    _add_hook("exit", _exporter_exit_hook)(mp, tmp)


def _clock(values: Callable[[], Callable[[], int]], attr: str) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """Replace one clock (``perf_ns``/``wall_ns``) everywhere the recording layer bound it."""
    from tokprof.profiler import context, decorate, recording, session

    def setup(mp: pytest.MonkeyPatch, tmp: Path) -> None:
        clock = values()
        mp.setattr(context, attr, clock)
        for mod in (recording, session, hooks):
            mp.setattr(mod, attr, clock)
        mp.setattr(decorate, {"perf_ns": "_perf", "wall_ns": "_wall"}[attr], clock)
    return setup


def backwards_clock() -> Callable[[], int]:
    c = itertools.count(10**15, -1000)
    return lambda: next(c)


def frozen_clock() -> Callable[[], int]:
    return lambda: 123


def readonly_folder(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    def ro(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EROFS, "Read-only file system")
    mp.setattr(run_writer, "open_private", ro)


def runs_folder_is_a_file(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    f = tmp / "runs-is-a-file"
    f.write_text("not a folder")
    mp.setenv("TOKPROF_DIR", str(f))


def runs_folder_unwritable(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    mp.setenv("TOKPROF_DIR", "/proc/tokprof-cannot-write-here")


def broken_logging(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    h = RaisingHandler()
    logging.getLogger("tokprof").addHandler(h)
    mp.setattr(RaisingHandler, "_installed", True, raising=False)
    _cleanups.append(lambda: logging.getLogger("tokprof").removeHandler(h))


_cleanups: list[Callable[[], None]] = []


def _agent_llm(**kw: Any) -> Callable[[], Any]:
    def agent() -> Any:
        out = standard_agent()
        record_llm_call(model="gpt-4o", **kw)
        return out
    return agent


def _agent_with(fn: Callable[[], Any]) -> Callable[[], Any]:
    def agent() -> Any:
        return (standard_agent(), fn())
    return agent


@trace
def echo(x: Any) -> Any:
    return x


@trace
def recurse(n: int) -> int:
    return 0 if n == 0 else 1 + recurse(n - 1)


@trace
def recurse_forever(n: int) -> int:
    return recurse_forever(n + 1)


@trace
def raise_interrupt() -> None:
    raise KeyboardInterrupt("user pressed ^C")


@trace
def raise_bad_str() -> None:
    raise BadStrError()


def tuple_key_span() -> str:
    with span("x", attributes={(1, 2): "tuple key"}):
        return "done"


def big_prompt_agent() -> Any:
    prompt = "x" * BIG
    record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": prompt}], output="ok",
                    usage={"input_tokens": BIG // 4, "output_tokens": 1})
    return (echo(prompt) is prompt, len(echo(prompt)))


def late_span_agent() -> Any:
    """A background thread finishes a traced call after the profile block has ended."""
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    box: list[Any] = []

    @trace
    def slow() -> str:
        started.set()
        release.wait(5)
        return "late"

    t = threading.Thread(target=hooks.run_in_context(lambda: (box.append(slow()), done.set())))
    t.start()
    started.wait(5)
    _late_threads.append((t, release, done, box))
    return "started"


_late_threads: list[Any] = []


FAULTS: list[Fault] = [
    # --- counting (tokenizers) ----------------------------------------------------------------------
    Fault("tokenizer-count-raises", _patch("tokprof.profiler.providers.chat_format.count_prompt", raiser(RuntimeError("tok")))),
    Fault("tokenizer-encoder-raises", _patch("tokprof.profiler.providers.tokenizers.get_encoder", raiser(RuntimeError("bpe")))),
    Fault("tokenizer-memory-error", _patch("tokprof.profiler.providers.chat_format.count_completion", raiser(MemoryError()))),
    Fault("tokenizer-lookup-raises", _patch("tokprof.profiler.providers.tokenizers.tokenizer_for", raiser(KeyError("model")))),
    Fault("tokenizer-returns-garbage", _patch("tokprof.profiler.providers.chat_format.count_completion", lambda *a, **k: "lots")),
    # --- prices -------------------------------------------------------------------------------------
    # Prices are not on the agent's path (they are applied when a run is summarised or reported): the
    # agent is unaffected and the saved run is whole.
    Fault("price-lookup-raises", _patch("tokprof.profiler.providers.prices.get_price", raiser(RuntimeError("price table"))), logs=0,
          check=lambda p, tmp: load_run(p.run.path)),
    Fault("price-table-unreadable", _patch("tokprof.profiler.providers.prices.resolve_model", raiser(OSError(errno.EIO, "I/O"))),
          logs=0, check=lambda p, tmp: load_run(p.run.path)),
    # --- storage ------------------------------------------------------------------------------------
    Fault("disk-full-ENOSPC-from-the-kernel", DevFullWriter.install),
    Fault("disk-full-mid-run", lambda mp, tmp: fail_after_open(mp, tmp),
          check=lambda p, tmp: _assert_incomplete(p.run.path)),
    Fault("disk-full-at-close", fail_at_close),
    Fault("read-only-folder-EROFS", readonly_folder),
    Fault("runs-folder-is-a-file", runs_folder_is_a_file, options={"save": True}),
    Fault("runs-folder-unwritable-proc", runs_folder_unwritable, options={"save": True}),
    Fault("payload-hash-raises", _patch("tokprof.profiler.store.payload_id", raiser(RuntimeError("sha1")))),
    Fault("span-serialisation-raises", _patch("tokprof.profiler.model.Span.to_dict", raiser(TypeError("to_dict")))),
    Fault("json-encoder-memory-error", _patch("tokprof.profiler.run_lines.dumps_line", raiser(MemoryError()))),
    Fault("redaction-raises", _patch("tokprof.profiler.redact._redact_text", raiser(RuntimeError("regex"))),
          agent=_agent_with(lambda: echo("sk-" + "a" * 48))),
    # --- unserialisable / hostile values ------------------------------------------------------------
    Fault("circular-message", agent=_agent_llm(messages=[circular_message()], usage={"input_tokens": 1}),
          logs=1),
    Fault("non-string-attribute-keys", agent=_agent_with(tuple_key_span)),
    # issue #21 point 3: a lone surrogate is stored losslessly (\u escapes), not a failed write
    Fault("lone-surrogate-argument", agent=_agent_with(lambda: echo("bad \ud800 text")), logs=0,
          check=lambda p, tmp: _assert_surrogate_kept(p.run.path)),
    Fault("argument-repr-raises", agent=_agent_with(lambda: echo(BadRepr())), logs=0),
    Fault("argument-repr-not-a-string", agent=_agent_with(lambda: echo(NonStrRepr())), logs=0),
    Fault("argument-repr-10MB", agent=_agent_with(lambda: echo(HugeRepr())), logs=0),
    # a usage dict that is not one is read as unknown (counted locally), not an internal error: the span is kept
    Fault("usage-not-a-number", agent=_agent_llm(messages=[], usage={"input_tokens": "lots"}), logs=0),
    Fault("usage-unknown-field", agent=_agent_llm(messages=[], usage={"prompt_tokenz": 5}), logs=0),
    Fault("messages-not-dicts", agent=_agent_llm(messages=[1, 2, 3])),
    Fault("50MB-prompt-and-argument", agent=big_prompt_agent, logs=0, repeat=1,
          check=lambda p, tmp: load_run(p.run.path)),
    # --- recursion ----------------------------------------------------------------------------------
    Fault("deep-recursion-300", agent=_agent_with(lambda: recurse(300)), logs=0),
    # --- hooks, handlers, exporters -----------------------------------------------------------------
    Fault("llm-span-hook-raises", _add_hook("llm", raiser(RuntimeError("hook")))),
    Fault("profile-enter-hook-raises", _add_hook("enter", raiser(RuntimeError("enter")))),
    Fault("profile-exit-hook-raises", _add_hook("exit", raiser(RuntimeError("exit")))),
    Fault("exporter-raises", _export_broken),
    Fault("langchain-message-conversion-raises",
          _patch("tokprof.profiler.integrations.langchain_convert.messages_to_openai", raiser(RuntimeError("lc")))),
    Fault("langchain-response-parsing-raises",
          _patch("tokprof.profiler.integrations.langchain_convert.fill_response", raiser(RuntimeError("lc")))),
    Fault("langchain-usage-parsing-raises",
          _patch("tokprof.profiler.integrations.langchain_convert.usage_from_message", raiser(ValueError("usage")))),
    Fault("langchain-handler-attach-raises",
          _patch("tokprof.profiler.integrations.langchain.attach", raiser(RuntimeError("attach")))),
    # --- clocks -------------------------------------------------------------------------------------
    Fault("monotonic-clock-runs-backwards", _clock(backwards_clock, "perf_ns"), logs=0,
          check=lambda p, tmp: str(p.run.summary())),
    Fault("monotonic-clock-frozen", _clock(frozen_clock, "perf_ns"), logs=0,
          check=lambda p, tmp: str(p.run.summary())),
    Fault("wall-clock-at-epoch", _clock(lambda: (lambda: 0), "wall_ns"), logs=0),
    Fault("wall-clock-year-2500", _clock(lambda: (lambda: 16_725_225_600 * 10**9), "wall_ns"), logs=0),
    # --- user exceptions pass through unchanged -----------------------------------------------------
    Fault("user-keyboard-interrupt", agent=raise_interrupt, logs=0),
    Fault("user-exception-str-raises", agent=raise_bad_str, logs=0),
    Fault("recursion-overflow-in-user-code", agent=lambda: recurse_forever(0), logs=None),
    # --- the rest ---------------------------------------------------------------------------------
    Fault("logging-itself-raises", broken_logging, logs=None),
    Fault("capture-off-stripping-raises", _patch("tokprof.profiler.collector.strip_payloads", raiser(RuntimeError("strip"))),
          options={"capture": False}),
    Fault("span-finished-after-profile-closed", agent=late_span_agent, logs=0),
]


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What the agent did: its value, or the type and message of what it raised."""
    try:
        return ("returned", fn())
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt is part of what is compared
        try:
            msg = str(exc)
        except Exception:
            msg = "<str raised>"
        return ("raised", (type(exc), msg))


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    while _cleanups:
        _cleanups.pop()()
    while _late_threads:
        t, release, done, box = _late_threads.pop()
        release.set()
        t.join(5)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault_does_not_break_the_host(fault: Fault, monkeypatch, tmp_path, caplog):
    if fault.id == "recursion-overflow-in-user-code":
        monkeypatch.setattr(sys, "getrecursionlimit", sys.getrecursionlimit)  # restored by monkeypatch
        sys.setrecursionlimit(400)
        _cleanups.append(lambda: sys.setrecursionlimit(1000))
    expected = outcome(fault.agent)
    caplog.clear()
    _reset_internal_errors()
    fault.setup(monkeypatch, tmp_path)
    save: Any = fault.options.get("save", tmp_path / "runs")
    p = profile("fault", save=save if fault.save else False, capture=fault.options.get("capture", True))
    with caplog.at_level(logging.WARNING, logger="tokprof"):
        with p:
            got = [outcome(fault.agent) for _ in range(fault.repeat)]
    if fault.id == "recursion-overflow-in-user-code":
        # Which C operation trips the limit (a call, or a comparison: "... exceeded in comparison") depends on
        # the exact stack depth, which any wrapper frame shifts; the user still gets a plain RecursionError.
        expected = (expected[0], (expected[1][0],))
        got = [(g[0], (g[1][0],)) for g in got]
    for g in got:
        assert g == expected, f"{fault.id}: the agent's result changed under the fault"
    if fault.logs is not None:
        lines = internal_error_records(caplog.records)
        assert len(lines) == fault.logs, f"{fault.id}: expected {fault.logs} internal-error line(s), got {lines}"
    # The run itself is still usable.
    assert p.run.spans, fault.id
    if fault.check is not None:
        fault.check(p, tmp_path)


def test_the_fault_list_is_long_enough():
    assert len(FAULTS) >= 30
    assert len({f.id for f in FAULTS}) == len(FAULTS)


def test_a_file_written_despite_a_transient_fault_still_loads(tmp_path, monkeypatch):
    """One span's line cannot be written (it is not serialisable); the file around it stays valid."""
    _reset_internal_errors()
    with profile("transient", save=tmp_path) as run:
        echo(1)
        with span("bad", attributes={(1, 2): "tuple key"}):
            pass
        echo(2)
    back = load_run(run.path)
    assert back.complete
    assert sorted(s.name for s in back.spans) == ["echo", "echo", "transient"]


def test_summary_survives_a_broken_price_table(monkeypatch):
    with profile("priced") as run:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], output="yo",
                        usage={"input_tokens": 3, "output_tokens": 1})
    monkeypatch.setattr("tokprof.profiler.providers.prices.get_price", raiser(RuntimeError("price table")))
    text = str(run.summary())
    assert "4" in text


# ---------------------------------------------------------------------------------------------------
# SDK instrumentation faults: the real OpenAI and Anthropic clients against the loopback server
# ---------------------------------------------------------------------------------------------------
def _openai_chat(server: Any) -> Any:
    import openai

    client = openai.OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    return (r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens)


def _openai_stream(server: Any) -> Any:
    import openai

    client = openai.OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    return "".join((c.choices[0].delta.content or "") for c in stream if c.choices)


def _anthropic_message(server: Any) -> Any:
    import anthropic

    client = anthropic.Anthropic(base_url=server.anthropic_url, api_key="test", max_retries=0)
    r = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    return (r.content[0].text, r.usage.input_tokens, r.usage.output_tokens)


def _raising_middleware(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    from tokprof.profiler.integrations import middleware

    remove = middleware.add_middleware(middleware.Middleware("broken", before_request=raiser(RuntimeError("mw"))))
    _cleanups.append(remove)


SDK_FAULTS = [
    ("openai-request-capture-raises", "openai", _openai_chat,
     _patch("tokprof.profiler.integrations.openai.ChatAdapter.request", raiser(RuntimeError("req")))),
    ("openai-response-parsing-raises", "openai", _openai_chat,
     _patch("tokprof.profiler.integrations.openai.ChatAdapter.fill", raiser(KeyError("choices")))),
    ("openai-stream-accumulator-raises", "openai", _openai_stream,
     _patch("tokprof.profiler.integrations.openai._ChatAccumulator.observe", raiser(ValueError("chunk")))),
    ("openai-middleware-raises", "openai", _openai_chat, _raising_middleware),
    ("anthropic-request-capture-raises", "anthropic", _anthropic_message,
     _patch("tokprof.profiler.integrations.anthropic.MessagesAdapter.request", raiser(RuntimeError("req")))),
    ("anthropic-response-parsing-raises", "anthropic", _anthropic_message,
     _patch("tokprof.profiler.integrations.anthropic.MessagesAdapter.fill", raiser(TypeError("usage")))),
]


@pytest.mark.parametrize("fault_id,sdk,call,setup", SDK_FAULTS, ids=[f[0] for f in SDK_FAULTS])
def test_sdk_fault_does_not_break_the_host(fault_id, sdk, call, setup, llm_server, monkeypatch, tmp_path, caplog):
    pytest.importorskip(sdk)
    from tokprof.profiler.integrations import uninstrument

    expected = outcome(lambda: call(llm_server))
    assert expected[0] == "returned", expected
    caplog.clear()
    _reset_internal_errors()
    setup(monkeypatch, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="tokprof"):
            with profile("sdk", save=tmp_path / "runs", instrument=[sdk]) as run:
                got = [outcome(lambda: call(llm_server)) for _ in range(3)]
    finally:
        uninstrument(sdk)
    assert got == [expected] * 3, fault_id
    lines = internal_error_records(caplog.records)
    assert len(lines) == 1, (fault_id, lines)
    assert load_run(run.path).complete
