"""Issue #21 point 8: names, paths and messages from runs and foreign files cannot inject rich markup or
terminal control sequences, and never crash a command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokprof.cli import main
from tokprof.profiler import profile, record_llm_call, span

HOSTILE = "evil [/] [link=file:///etc/passwd]x[/link] \x1b]0;pwned\x07\x1b[2J\x1b[31m\r\x9b"
CONTROL = ("\x1b", "\x07", "\x9b", "\r")


def _hostile_run(folder: Path) -> Path:
    with profile(HOSTILE, save=str(folder), tags={"t": HOSTILE}) as p:
        with span(HOSTILE, kind="tool"):
            pass
        record_llm_call(model=HOSTILE, messages=[{"role": "user", "content": HOSTILE}], output=HOSTILE,
                        usage={"input_tokens": 3, "output_tokens": 1})
    return p.path


@pytest.mark.parametrize("argv", [["show", "{run}"], ["report", "{run}", "-o", "{tmp}/r.html"], ["ls", "--dir", "{dir}"],
                                  ["optimize", "{run}", "--out", "{tmp}/o"]])
def test_commands_print_hostile_names_safely(tmp_path, capfd, argv):
    run = _hostile_run(tmp_path / "runs")
    args = [a.format(run=run, tmp=tmp_path, dir=tmp_path / "runs") for a in argv]
    assert main(args) == 0
    out, err = capfd.readouterr()
    for text in (out, err):
        # the data's ESC/BEL/CSI are gone: what is left of the sequences is inert text
        assert not any(c in text for c in CONTROL), (argv[0], text)


def test_import_of_a_file_named_with_markup(tmp_path, capfd):
    src = tmp_path / "[bold]x[red] \x1b[2J.jsonl"  # (a file name cannot hold "/")
    src.write_text(json.dumps({"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                               "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}],
                                            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}) + "\n")
    assert main(["import", str(src), "--out", str(tmp_path / "out")]) == 0
    out, err = capfd.readouterr()
    assert "\x1b[2J" not in out + err


def test_clean_and_escape():
    from tokprof.console_safe import clean, escape

    assert clean("a\x1b[2Jb\tc\n") == "a[2Jb\tc\n"
    assert escape("[/]") == "\\[/]"


def test_bidi_override_characters_are_stripped() -> None:
    """Trojan Source (CVE-2021-42574): U+202E and the isolates reorder what the terminal shows."""
    from tokprof.console_safe import clean

    spoof = "invoice\u202egnp.exe \u2066x\u2069 \u202ay\u202c"
    assert clean(spoof) == "invoicegnp.exe x y"
    assert clean("naïve 中文 café") == "naïve 中文 café"  # ordinary non-ASCII text is kept
