"""The wheel installs one top-level package, ``tokprof``, and works next to a user's own ``profiler``,
``reports`` and ``optimizers`` packages (issue #13: the old layout installed those names at top level and a
user's ``reports/`` package broke ``tokprof report``).

Builds the wheel from this checkout (``pip wheel --no-deps --no-build-isolation``: offline, with the
setuptools and wheel of the test environment), installs it into a fresh venv (the test environment's site folders,
added after the venv's, supply the dependencies; the wheel itself is installed into the venv,
``--no-deps --no-index``), then
from a folder holding the user's packages runs a profiled script, ``tokprof report`` and
``tokprof optimize``.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

USER_PACKAGES = {
    # A user's project whose package names are the repository's folder names: if tokprof still installed
    # or imported them at top level, these would shadow (or be shadowed by) tokprof's modules.
    "profiler/__init__.py": "WHO = 'user profiler'\n",
    "reports/__init__.py": "WHO = 'user reports'\n",
    "reports/views.py": "def page():\n    return 'user page'\n",
    "optimizers/__init__.py": "raise ImportError('the user optimizers package must never be imported by tokprof')\n",
}

AGENT = textwrap.dedent('''
    import json, sys
    import profiler, reports
    from tokprof import profile, record_llm_call, span, trace

    @trace(kind="tool")
    def lookup(order: str) -> str:
        return json.dumps({"order": order, "status": "shipped", "items": ["a", "b"]})

    with profile("user-agent", save=True) as run:
        system = {"role": "system", "content": "You are a support agent. " * 40}
        history = [system, {"role": "user", "content": "where is order 42?"}]
        for step in range(3):
            with span("step", kind="agent"):
                out = lookup("42")
                history = history + [{"role": "tool", "tool_call_id": f"c{step}", "content": out}]
                record_llm_call(model="gpt-4o-mini", messages=history, output="checking",
                                usage={"input_tokens": 400 + 50 * step, "output_tokens": 20})
    assert profiler.WHO == "user profiler" and reports.WHO == "user reports"
    print(json.dumps({"run_id": run.run_id, "path": str(run.path), "llm_calls": len(run.llm_spans())}))
''')


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dest), str(ROOT)], cwd=dest, env=dict(os.environ))
    wheels = list(dest.glob("tokprof-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_installs_only_tokprof_at_top_level(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"tokprof", "tokprof-0.1.0.dist-info"}, top
    record = zipfile.ZipFile(wheel).read("tokprof-0.1.0.dist-info/RECORD").decode()
    recorded_top = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines() if line}
    assert recorded_top == top
    for needed in ("tokprof/py.typed", "tokprof/profiler/model.py", "tokprof/optimizers/live/session.py",
                   "tokprof/reports/html.py", "tokprof/profiler/providers/data/prices.json"):
        assert needed in names, needed
    entry_points = zipfile.ZipFile(wheel).read("tokprof-0.1.0.dist-info/entry_points.txt").decode()
    assert "tokprof.plugins" not in entry_points and "tokprof = tokprof.cli:main" in entry_points


def test_installed_wheel_works_beside_a_users_own_packages(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=dict(os.environ))
    py, tokprof_cli = venv / "bin" / "python", venv / "bin" / "tokprof"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The dependencies come from the test environment's own site folders, added after the venv's (what
    # --system-site-packages does when the tests run in the system Python; in a venv, as the README's test
    # command is usually run, the system's site folder lacks them)
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path,
                   env=env).stdout.strip()
    # plain path lines: the folders go on sys.path but their own .pth files are not run (the checkout's
    # editable install is one: it would import the checkout's tokprof instead of the wheel's)
    (Path(purelib) / "_test_env_deps.pth").write_text("".join(f"{d}\n" for d in site.getsitepackages()))
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path, env=env)
    where = _run([str(py), "-c", "import tokprof, rich; print(tokprof.__file__)"], cwd=tmp_path, env=env).stdout
    assert where.strip().startswith(purelib), where  # the wheel's tokprof, not the checkout's

    # Only tokprof and its dist-info were installed at top level (pip's own record of the install).
    shown = _run([str(py), "-m", "pip", "show", "-f", "tokprof"], cwd=tmp_path, env=env).stdout
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    tops = {f.split("/", 1)[0] for f in files if not f.startswith("../")}
    assert tops == {"tokprof", "tokprof-0.1.0.dist-info"}, tops

    user = tmp_path / "project"
    for rel, text in USER_PACKAGES.items():
        (user / rel).parent.mkdir(parents=True, exist_ok=True)
        (user / rel).write_text(text)
    (user / "agent.py").write_text(AGENT)
    # The user's project folder is on the import path, as in a Django or data project run from its root.
    env = dict(env, PYTHONPATH=str(user), TOKPROF_DIR=str(tmp_path / "runs"), CI="true")

    where = _run([str(py), "-c", "import tokprof; print(tokprof.__file__)"], cwd=user, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed wheel, not this checkout

    doc = json.loads(_run([str(py), "agent.py"], cwd=user, env=env).stdout.strip().splitlines()[-1])
    assert doc["llm_calls"] == 3 and Path(doc["path"]).is_file()

    report = user / "out" / "report.html"
    report.parent.mkdir()
    _run([str(tokprof_cli), "report", doc["run_id"], "-o", str(report)], cwd=user, env=env)
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:500]
    assert "user-agent" in html

    out = _run([str(tokprof_cli), "optimize", doc["run_id"], "--passes", "default", "--json"], cwd=user, env=env)
    result = json.loads(out.stdout)
    assert result  # a ledger came back (its numbers are tested elsewhere)
