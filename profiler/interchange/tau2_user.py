"""Rebuild the prompt τ²-bench's simulated user (an LLM) was sent before each of its turns.

τ²-bench records, for every message the simulated user produced, the provider's ``usage`` of the call that
produced it, but not the prompt itself. The prompt is deterministic, so we rebuild it the way
``tau2.user.user_simulator.UserSimulator`` does:

* a system message: the global simulation guidelines, a blank line, then ``<scenario>`` with the task's
  ``user_scenario`` rendered as ``str(UserScenario)`` (``Persona:`` / ``Instructions:`` blocks, indented
  with tabs; structured instructions as ``Domain:``, ``Reason for call:``, ... lines);
* the conversation so far with roles flipped (``UserState.flip_roles``): the agent's text messages become
  ``user`` messages, the simulated user's own earlier messages become ``assistant`` messages, and only tool
  results the *user* requested are shown. The agent's tool calls and their results never reach the user.

Both this package's importer and the accounting tests use :func:`user_prompt_messages`, so there is one
copy of these rules.
"""

from __future__ import annotations

import textwrap
from typing import Any

from tokprof.profiler.interchange.base import nullish, tool_calls_to_openai
from tokprof.profiler.model import Message

_SYSTEM_TEMPLATE = "{guidelines}\n\n<scenario>\n{instructions}\n</scenario>"
_PERSONA_PLACEHOLDER = "<PERSONA_GUIDELINES>"


def _text(value: Any) -> str | None:
    """A text, or ``None`` for a missing value (tau2 files sometimes store the string "None")."""
    value = nullish(value)
    return value if value is None or isinstance(value, str) else str(value)


def _indent(text: str) -> str:
    return textwrap.indent(text, "\t")


def render_instructions(instructions: Any) -> str:
    """``str(StructuredUserInstructions)`` (or the plain string when instructions are free text)."""
    if not isinstance(instructions, dict):
        return _text(instructions) or ""
    lines = [f"Domain: {instructions.get('domain')}"]
    lines.append(f"Reason for call:\n{_indent(_text(instructions.get('reason_for_call')) or '')}")
    known = _text(instructions.get("known_info"))
    if known is not None:
        lines.append(f"Known info:\n{_indent(known)}")
    unknown = _text(instructions.get("unknown_info"))
    if unknown is not None:
        lines.append(f"Unknown info:\n{_indent(unknown)}")
    lines.append(f"Task instructions:\n{_indent(_text(instructions.get('task_instructions')) or '')}")
    return "\n".join(lines)


def render_user_scenario(scenario: Any) -> str:
    """``str(UserScenario)``: an optional ``Persona:`` block, then the ``Instructions:`` block."""
    if not isinstance(scenario, dict):
        return _text(scenario) or ""
    lines: list[str] = []
    persona = _text(scenario.get("persona"))
    if persona is not None:
        lines.append("Persona:")
        lines.append(_indent(persona))
    lines.append("Instructions:")
    lines.append(_indent(render_instructions(scenario.get("instructions"))))
    return "\n".join(lines)


def user_system_prompt(info: dict[str, Any], task: dict[str, Any]) -> str:
    """The simulated user's system prompt for ``task`` under the run's ``info``."""
    guidelines = _text((info.get("user_info") or {}).get("global_simulation_guidelines")) or ""
    # Newer tau2 versions splice optional persona guidelines in here; none are recorded, so drop the marker.
    guidelines = guidelines.replace(_PERSONA_PLACEHOLDER, "")
    return _SYSTEM_TEMPLATE.format(guidelines=guidelines,
                                   instructions=render_user_scenario(task.get("user_scenario")))


def flip_roles(messages_before: list[dict[str, Any]]) -> list[Message]:
    """The conversation as the simulated user sees it (``UserState.flip_roles``), in OpenAI format."""
    out: list[Message] = []
    for m in messages_before:
        role = m.get("role")
        content = _text(m.get("content"))
        if role == "assistant":
            # The agent's tool calls go to the environment, never to the user.
            if m.get("tool_calls") and m.get("tool_calls") != "None":
                continue
            if content is None:
                continue
            out.append({"role": "user", "content": content})
        elif role == "user":
            msg: Message = {"role": "assistant", "content": content}
            calls = m.get("tool_calls")
            if calls and calls != "None":
                msg["tool_calls"] = tool_calls_to_openai(calls)
            out.append(msg)
        elif role == "tool":
            if m.get("requestor") == "user":
                out.append({"role": "tool", "tool_call_id": m.get("id") or "", "content": content or ""})
    return out


def user_prompt_messages(info: dict[str, Any], task: dict[str, Any],
                         messages_before: list[dict[str, Any]]) -> list[Message]:
    """The full prompt (OpenAI chat messages) of the simulated user's call that followed ``messages_before``.

    Args:
        info: the submission's top-level ``info`` (``info.user_info.global_simulation_guidelines``).
        task: the task (``tasks[i]``, with ``user_scenario``) of the simulation.
        messages_before: the simulation's ``messages`` before the user message whose usage is wanted.
    """
    system: Message = {"role": "system", "content": user_system_prompt(info, task)}
    return [system, *flip_roles(messages_before)]
