"""Pictures people would rather look at than read: training curves, score histograms, progress curves, the
comparison's bar chart. The one module that draws (matplotlib, files only)."""

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def training_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Loss terms per step (left) and evaluation metrics at each evaluation (right), as a PNG."""
    evals = [h for h in history if "eval_voc" in h]
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6, 4), squeeze=False)
    left = axes[0][0]
    steps = [h["step"] for h in history]
    for key in ("loss", "progress", "success", "preference", "rank"):
        values = [h.get(key, float("nan")) for h in history]
        window = max(1, len(values) // 50)
        smooth = [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
        left.plot(steps, smooth, label=key)
    left.set(xlabel="step", ylabel="loss (smoothed)", title="training losses")
    left.legend()
    if evals:
        right = axes[0][1]
        for key in ("eval_voc", "eval_kendall_tau_a", "eval_failure_f1", "eval_preference_accuracy"):
            right.plot([h["step"] for h in evals], [h[key] for h in evals], marker="o", label=key.removeprefix("eval_"))
        right.set(xlabel="step", ylim=(-0.1, 1.05), title="evaluation")
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (for pages that inline their images); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def score_histograms(rows: pd.DataFrame):
    """Final progress histograms, one per task."""
    tasks = sorted(rows["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.hist(rows.loc[rows["task"] == task, "final_progress"], bins=np.linspace(0, 1, 11), color="#4878a8")
        ax.set_title(task if len(task) < 32 else task[:30] + "…", fontsize=8)
        ax.set_xlabel("final progress", fontsize=8)
    fig.tight_layout()
    return fig


def progress_curve(frame_index: Sequence[int], progress: Sequence[float]):
    fig, ax = plt.subplots(figsize=(2.6, 1.6))
    ax.plot(frame_index, progress, marker="o", markersize=3)
    ax.set(ylim=(-0.05, 1.05), xlabel="frame", ylabel="progress")
    fig.tight_layout()
    return fig


def bar_chart(results: dict, methods: Sequence[str], path: Path) -> Path:
    """BC success rate per target task and method, with the seeds' spread."""
    tasks = list(results["tasks"])
    fig, ax = plt.subplots(figsize=(1.8 + 0.4 * len(methods) * len(tasks), 3.4))
    width = 0.8 / len(methods)
    for m, method in enumerate(methods):
        means = [results["tasks"][t][method]["success_mean"] for t in tasks]
        stds = [results["tasks"][t][method]["success_std"] for t in tasks]
        ax.bar(np.arange(len(tasks)) + m * width, means, width, yerr=stds, label=method, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set(ylabel="BC success rate", ylim=(0, 1.05), title="behaviour cloning on each selection")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
