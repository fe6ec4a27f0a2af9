"""NVIDIA's `perf_analyzer` (2.51, the binary in the tritonclient wheel) measuring Inferneo.

perf_analyzer reads the model's metadata and configuration, generates inputs from them, drives
load at each concurrency, and reads the server-side statistics before and after every window: its
"Server:" section only appears when the statistics extension answers as Triton's does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Inferneo


def perf_analyzer() -> tuple[Path, dict[str, str]]:
    """The binary and an environment where it finds libcudart.so.12 (it needs it even on CPU)."""
    binary = Path(sys.executable).parent / "perf_analyzer"
    if not binary.exists():
        binary = ROOT / ".venv-triton" / "bin" / "perf_analyzer"
    cudart = sorted(ROOT.glob(".venv-triton/lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    library_path = ":".join([*(str(p) for p in cudart), os.environ.get("LD_LIBRARY_PATH", "")])
    return binary, {**os.environ, "LD_LIBRARY_PATH": library_path.rstrip(":")}


def server_counts(output: str) -> list[dict[str, int]]:
    """The counters of the "Server:" section of each concurrency's report, in order."""
    counts = []
    for block in re.split(r"^Request concurrency: \d+", output, flags=re.M)[1:]:
        _, found, server = block.partition("Server:")
        if not found:
            continue
        fields = re.findall(r"^\s*([A-Za-z ]+ count):\s*(\d+)", server, re.M)
        counts.append({name.strip(): int(value) for name, value in fields})
    return counts


@pytest.mark.parametrize(
    ("protocol", "model", "concurrency"),
    [
        pytest.param("http", "mlp_tiny", "1:2", id="http-mlp_tiny"),
        pytest.param("http", "text_stats", "1", id="http-text_stats-bytes"),
        pytest.param("grpc", "mlp_tiny", "1:2", id="grpc-mlp_tiny"),
    ],
)
def test_perf_analyzer_measures_inferneo(
    inferneo: Inferneo, protocol: str, model: str, concurrency: str
) -> None:
    binary, env = perf_analyzer()
    url = inferneo.http_url if protocol == "http" else inferneo.grpc_url
    command = [
        str(binary),
        "-m", model,
        "-u", url,
        "-i", protocol,
        "--concurrency-range", concurrency,
        "--measurement-interval", "1000",
        # The default 10 % stability band can take many windows on a busy 2-core CI machine; this
        # test checks that the measurement completes and agrees with the server, not its figures.
        "--stability-percentage", "50",
        "--max-trials", "10",
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"perf_analyzer failed ({run.returncode}):\n{output[-4000:]}"

    levels = [int(c) for c in re.findall(r"^Request concurrency: (\d+)", output, re.M)]
    assert levels == list(range(1, int(concurrency.split(":")[-1]) + 1)), output[-4000:]
    counts = server_counts(output)
    assert len(counts) == len(levels), f"no 'Server:' section per concurrency:\n{output[-4000:]}"
    for c in counts:
        # Triton's statistics as perf_analyzer reads them: every request succeeded and was executed.
        assert c["Inference count"] > 0, c
        assert c["Execution count"] > 0, c
        assert c["Successful request count"] > 0, c
        assert c["Execution count"] <= c["Inference count"], c
    client_requests = [int(n) for n in re.findall(r"^\s+Request count: (\d+)", output, re.M)]
    assert all(n > 0 for n in client_requests), output[-4000:]
    throughput = re.findall(r"^Concurrency: \d+, throughput: ([\d.]+) infer/sec", output, re.M)
    assert len(throughput) == len(levels)
    assert all(float(t) > 0 for t in throughput)
