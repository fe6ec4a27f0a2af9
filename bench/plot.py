"""Draws a benchmark's JSON results as a PNG: p50/p99 latency and throughput per path and concurrency."""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def batching(results: dict, png_path: str) -> None:
    """Throughput (samples/s) and p99 latency against concurrency, batching on vs off, per model,
    with the model's in-process batched limit as a line."""
    models = list(results["models"].keys())
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        data = results["models"][model]
        for mode in ("batching_on", "batching_off"):
            points = data[mode]
            cs = sorted(int(c) for c in points)
            axes[row][0].plot(cs, [points[str(c)]["throughput_rps"] for c in cs], marker="o", label=mode)
            axes[row][1].plot(cs, [points[str(c)]["p99_ms"] for c in cs], marker="o", label=mode)
        limit = data["inprocess_limit"]
        axes[row][0].axhline(limit["samples_per_s"], color="gray", linestyle="--", label=f"in-process limit (batch {limit['batch_size']})")
        for ax, title, unit in ((axes[row][0], "throughput", "samples/s"), (axes[row][1], "p99 latency", "ms")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent single-sample clients")
            ax.set_ylabel(unit)
            ax.set_title(f"{model}: {title}")
            ax.legend(fontsize=8)
    fig.suptitle(results.get("title", "Inferneo batching benchmark"))
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


def triton(results: dict, png_path: str) -> None:
    """Per concurrency: p50 (solid) and p99 (light) latency, and throughput, of every path — straight
    to Triton and through Inferneo — with the latency Inferneo adds written above its bars."""
    paths = results["paths"]
    names = list(paths.keys())
    concurrencies = [str(c) for c in results["concurrency"]]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(concurrencies))]
        p50 = [paths[name][c]["p50_ms"] for c in concurrencies]
        p99 = [paths[name][c]["p99_ms"] for c in concurrencies]
        rps = [paths[name][c]["throughput_rps"] for c in concurrencies]
        axes[0].bar(xs, p99, width, alpha=0.35, color=f"C{i}")
        axes[0].bar(xs, p50, width, label=name, color=f"C{i}")
        axes[1].bar(xs, rps, width, label=name, color=f"C{i}")
    overhead = results.get("overhead_vs_direct", {})
    lines = [
        f"{protocol} c={c}: +{o['p50_ms']:.2f} ms p50, +{o['p99_ms']:.2f} ms p99"
        for protocol, by_c in overhead.items()
        for c, o in by_c.items()
    ]
    if lines:
        axes[0].text(
            0.01, 0.98, "Inferneo adds\n" + "\n".join(lines), transform=axes[0].transAxes,
            va="top", fontsize=8, bbox={"facecolor": "white", "alpha": 0.8},
        )  # fmt: skip
    ticks = [j + width * (len(names) - 1) / 2 for j in range(len(concurrencies))]
    for ax, title, unit in (
        (axes[0], "latency (p50 solid, p99 light)", "ms"),
        (axes[1], "throughput", "requests/s"),
    ):
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"concurrency {c}" for c in concurrencies])
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(results.get("title", "Inferneo in front of Triton"), fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


def jobs(results: dict, png_path: str) -> None:
    """A batch job's rows/s beside online batched requests/s; online p99 alone and during a job;
    peak memory of each process."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    online, job, inter = results["online"], results["job"], results["interference"]
    names = [f"online\n({online['concurrency']} clients)", f"batch job\n({job['rows']:,} rows)", "batch job\nincl. submit"]
    values = [online["throughput_rps"], job["rows_per_s"], job["end_to_end_rows_per_s"]]
    axes[0].bar(names, values, color=["tab:blue", "tab:orange", "tab:olive"])
    axes[0].set_ylabel("samples/s (rows/s)")
    axes[0].set_title(f"{results['model']}: throughput")
    for i, v in enumerate(values):
        axes[0].text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    alone, during = inter["online_alone"], inter["online_during_job"]
    xs = range(3)
    axes[1].bar([x - 0.2 for x in xs], [alone["p50_ms"], alone["p95_ms"], alone["p99_ms"]], 0.4, label="online alone")
    axes[1].bar([x + 0.2 for x in xs], [during["p50_ms"], during["p95_ms"], during["p99_ms"]], 0.4, label="online during a job")
    axes[1].set_xticks(list(xs))
    axes[1].set_xticklabels(["p50", "p95", "p99"])
    axes[1].set_ylabel("ms")
    axes[1].set_title(f"online latency, {inter['concurrency']} clients ({alone['throughput_rps']:,.0f} vs {during['throughput_rps']:,.0f} req/s)", fontsize=9)
    axes[1].legend(fontsize=8)
    memory = {k.removesuffix("_peak_rss_mb"): v for k, v in results["memory"].items() if k.endswith("_peak_rss_mb")}
    axes[2].barh(list(memory.keys()), list(memory.values()), color="tab:gray")
    axes[2].set_xlabel("peak RSS, MiB")
    axes[2].set_title("peak memory")
    fig.suptitle(results.get("title", "Inferneo batch jobs benchmark"), fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


def llm(results: dict, png_path: str) -> None:
    """Per concurrency and path: time to first token (p50 solid, p99 light) and generated tokens/s."""
    paths = results["paths"]
    names = list(paths.keys())
    concurrencies = [str(c) for c in results["concurrency"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(concurrencies))]
        axes[0].bar(xs, [paths[name][c]["ttft_p99_ms"] for c in concurrencies], width, alpha=0.35, color=f"C{i}")
        axes[0].bar(xs, [paths[name][c]["ttft_p50_ms"] for c in concurrencies], width, label=name, color=f"C{i}")
        axes[1].bar(xs, [paths[name][c]["tokens_per_s"] for c in concurrencies], width, label=name, color=f"C{i}")
    ticks = [j + width * (len(names) - 1) / 2 for j in range(len(concurrencies))]
    for ax, title, unit in (
        (axes[0], "time to first token (p50 solid, p99 light)", "ms"),
        (axes[1], "generated tokens/s (all clients)", "tokens/s"),
    ):
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"concurrency {c}" for c in concurrencies])
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_yscale("log")
    fig.suptitle(results.get("title", "Inferneo LLM benchmark"), fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


def main(results_path: str, png_path: str, kind: str = "latency") -> None:
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    if kind == "batching":
        batching(results, png_path)
        return
    if kind == "triton":
        triton(results, png_path)
        return
    if kind == "jobs":
        jobs(results, png_path)
        return
    if kind == "llm":
        llm(results, png_path)
        return
    models = list(results["models"].keys())
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        paths = results["models"][model]
        names = list(paths.keys())
        concurrencies = sorted({int(c) for p in paths.values() for c in p}, key=int)
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            xs = [j + i * width for j in range(len(concurrencies))]
            p50 = [paths[name][str(c)]["p50_ms"] for c in concurrencies]
            p99 = [paths[name][str(c)]["p99_ms"] for c in concurrencies]
            rps = [paths[name][str(c)]["throughput_rps"] for c in concurrencies]
            axes[row][0].bar(xs, p99, width, label=f"{name} p99", alpha=0.45)
            axes[row][0].bar(xs, p50, width, label=f"{name} p50")
            axes[row][1].bar(xs, rps, width, label=name)
        for ax, title, unit in ((axes[row][0], "latency", "ms"), (axes[row][1], "throughput", "requests/s")):
            ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(concurrencies))])
            ax.set_xticklabels([f"concurrency {c}" for c in concurrencies])
            ax.set_title(f"{model}: {title}")
            ax.set_ylabel(unit)
            ax.legend(fontsize=8)
    fig.suptitle(results.get("title", "Inferneo benchmark"))
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    main(*sys.argv[1:4])
