"""Issue #21: ``tokprof ingest --engine ray --address`` with no Ray cluster there fails with a clear one-line
error instead of Ray's retries (over ten minutes when nothing listens).

Nothing listening: refused by the TCP probe before Ray is asked. Something listening that is not a Ray
head: ``ray.init`` is given ``$TOKPROF_RAY_CONNECT_TIMEOUT`` seconds (1 here) in a subprocess, so the Ray
connection thread left waiting cannot touch other tests' Ray state."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile_runs import TEXT

pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_file(tmp_path: Path) -> Path:
    p = tmp_path / "runs" / "r.jsonl"
    p.parent.mkdir()
    p.write_text(TEXT)
    return p


def test_nothing_listening_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tokprof.cli import main

    port = _free_port()  # bound then closed: nothing listens there
    rc = main(["ingest", str(_run_file(tmp_path)), "--ledger", str(tmp_path / "l.duckdb"),
               "--engine", "ray", "--address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"no Ray cluster at 127.0.0.1:{port}" in err and "Traceback" not in err


def test_listening_but_not_ray_times_out_with_a_clear_error(tmp_path: Path) -> None:
    from tokprof.fleet.ray_engine import CONNECT_TIMEOUT_ENV

    with socket.socket() as listener:  # accepts connections, never speaks Ray's protocol
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        # without the RAY_* variables an earlier in-process cluster (test_fleet_ray) leaves in the environment
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, CONNECT_TIMEOUT_ENV: "1",
               "HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from tokprof.cli import main; sys.exit(main(sys.argv[1:]))",
             "ingest", str(_run_file(tmp_path)), "--ledger", str(tmp_path / "l.duckdb"), "--engine", "ray",
             "--address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, env=env, timeout=600)  # a guard against the old hang, not a timing
    assert done.returncode != 0
    assert f"no Ray cluster answered at 127.0.0.1:{port} within 1 s" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("address,expected", [("127.0.0.1:6379", ("127.0.0.1", 6379)),
                                              ("ray://head:10001", ("head", 10001)),
                                              ("[::1]:6379", ("::1", 6379)), ("auto", None), ("local", None)])
def test_host_port(address: str, expected: tuple[str, int] | None) -> None:
    from tokprof.fleet.ray_engine import _host_port

    assert _host_port(address) == expected
