"""`tokprof run`, `show`, `ls` and `--help`, through the real console script entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tokprof.cli import main

AGENT = textwrap.dedent("""
    import sys
    from tokprof.profiler import trace, record_llm_call

    @trace(kind="tool")
    def lookup(order):
        return {"order": order, "status": "shipped"}

    @trace(kind="agent")
    def agent(task):
        lookup("A1")
        record_llm_call(model="gpt-4o", provider="openai",
                        messages=[{"role": "user", "content": task}], output="done",
                        usage={"input_tokens": 120, "output_tokens": 30})
        return "done"

    print(agent(" ".join(sys.argv[1:])))
""")


def run_cli(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKPROF_DIR=str(env_dir))
    return subprocess.run([sys.executable, "-m", "tokprof.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_run_show_ls_json(tmp_path):
    script = tmp_path / "my_agent.py"
    script.write_text(AGENT)
    runs = tmp_path / "runs"
    r = run_cli("run", "--json", "--tag", "team=payments", str(script), "refund", "A1", env_dir=runs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "done"  # the script's own output comes first
    doc = json.loads("\n".join(r.stdout.splitlines()[1:]))
    assert doc["tokens"]["input"] == 120 and doc["tokens"]["output"] == 30 and doc["llm_calls"] == 1
    assert doc["tags"] == {"team": "payments"} and doc["complete"] is True
    assert Path(doc["path"]).exists()

    r = run_cli("show", "--json", env_dir=runs)
    assert r.returncode == 0, r.stderr
    show = json.loads(r.stdout)
    tree = show["tree"]
    assert [row["name"] for row in tree] == ["my_agent", "agent", "lookup", "gpt-4o"]
    assert tree[1]["incl"]["input"] == 120 and tree[1]["excl"]["input"] == 0
    assert tree[3]["excl"]["output"] == 30

    r = run_cli("show", env_dir=runs)
    assert r.returncode == 0 and "lookup" in r.stdout

    r = run_cli("ls", "--json", env_dir=runs)
    listing = json.loads(r.stdout)["runs"]
    assert len(listing) == 1 and listing[0]["llm_calls"] == 1 and listing[0]["tags"] == {"team": "payments"}


def test_script_exit_code_and_exception_are_passed_through(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import sys\nsys.exit(3)\n")
    r = run_cli("run", str(script), env_dir=tmp_path / "runs")
    assert r.returncode == 3
    script.write_text("raise ValueError('from the user')\n")
    r = run_cli("run", str(script), env_dir=tmp_path / "runs")
    assert r.returncode == 1 and "ValueError: from the user" in r.stderr
    # the run was still saved, with the error on its root span
    r = run_cli("show", "--json", env_dir=tmp_path / "runs")
    assert json.loads(r.stdout)["tree"][0]["status"] == "error"


def test_help_and_errors(capsys, tmp_path):
    assert main([]) == 2
    assert "tokprof demo" in capsys.readouterr().out
    for cmd in ("run", "show", "ls"):
        try:
            main([cmd, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert "--json" in capsys.readouterr().out
    assert main(["show", "--dir", str(tmp_path / "none")]) == 1
    assert "no saved runs" in capsys.readouterr().err


def test_show_a_damaged_run_keeps_what_it_can(tmp_path):
    script = tmp_path / "my_agent.py"
    script.write_text(AGENT)
    runs = tmp_path / "runs"
    assert run_cli("run", str(script), "x", env_dir=runs).returncode == 0
    (path,) = runs.glob("*.jsonl")
    lines = path.read_text().splitlines()
    lines.insert(2, "{garbage")
    path.write_text("\n".join(lines) + "\n")
    r = run_cli("show", "--json", env_dir=runs)
    assert r.returncode == 0, r.stderr
    assert f"{path.name}:3" in r.stderr and "skipped" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["complete"] is False and doc["llm_calls"] == 1
    r = run_cli("show", "--strict", env_dir=runs)
    assert r.returncode == 1 and f"{path.name}:3: malformed JSON" in r.stderr
