"""The reward-inflation plot: training reward against RecBole validation over steps."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(history, valid_metric, path):
    """One panel per stage: its training signal (GRPO reward, SFT loss) and the validation metric.

    ``history`` holds ``{"stage", "step", "kind": "train"|"valid", ...}`` records. Rising
    reward over a flat validation metric is reward inflation, visible at a glance.
    """
    stages = list(dict.fromkeys(r["stage"] for r in history if r["stage"] != "zero-shot"))
    zero_shot = [r for r in history if r["stage"] == "zero-shot"]
    figure, axes = plt.subplots(1, max(1, len(stages)), figsize=(6 * max(1, len(stages)), 4), squeeze=False)
    for axis, stage in zip(axes[0], stages):
        train = [r for r in history if r["stage"] == stage and r["kind"] == "train"]
        signal = "reward" if any("reward" in r for r in train) else "loss"
        points = [(r["step"], r[signal]) for r in train if signal in r]
        axis.plot([p[0] for p in points], [p[1] for p in points], color="tab:orange", alpha=0.8, label=f"train {signal}")
        axis.set_xlabel(f"{stage} step")
        axis.set_ylabel(f"train {signal}", color="tab:orange")
        valid_axis = axis.twinx()
        valid = [(0, zero_shot[0]["score"])] if zero_shot and stage == stages[0] else []
        valid += [(r["step"], r["score"]) for r in history if r["stage"] == stage and r["kind"] == "valid"]
        valid_axis.plot([v[0] for v in valid], [v[1] for v in valid], "o-", color="tab:blue", label=f"valid {valid_metric}")
        valid_axis.set_ylabel(f"valid {valid_metric}", color="tab:blue")
        axis.set_title(f"{stage}: train {signal} vs. valid {valid_metric}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
