"""Pictures people would rather look at than read: training curves."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


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
