"""Bar charts of a comparison table: ranking metrics per row, and wall time per row."""
import matplotlib

matplotlib.use("Agg")  # files only: the comparison runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_metrics(rows, metrics, path, title):
    """Grouped bars: one group per metric, one bar per row, error bars = std over seeds.

    ``rows``: dicts with ``"row"``, ``metric`` and ``f"{metric} std"`` entries (NaN = missing).
    """
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(metrics) + 0.3 * len(rows)), 4.8))
    width = 0.8 / max(1, len(rows))
    positions = np.arange(len(metrics))
    for index, row in enumerate(rows):
        means = [row.get(metric, np.nan) for metric in metrics]
        stds = [row.get(f"{metric} std", np.nan) for metric in metrics]
        ax.bar(
            positions + (index - (len(rows) - 1) / 2) * width,
            np.nan_to_num(means),
            width,
            yerr=np.nan_to_num(stds),
            capsize=2,
            label=row["row"],
            hatch="//" if row["row"] == "random" else None,
        )
    ax.set_xticks(positions, metrics)
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_times(rows, path, title):
    """Stacked horizontal bars of training (incl. validation) and test time, log scale."""
    timed = [row for row in rows if np.isfinite(row.get("train s", np.nan))]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(timed) + 1.5))
    names = [row["row"] for row in timed]
    train = np.array([row["train s"] for row in timed])
    test = np.array([row["eval s"] for row in timed])
    ax.barh(names, train, label="train + validation")
    ax.barh(names, test, left=train, label="test evaluation")
    ax.set_xscale("log")
    ax.set_xlabel("wall time per seed (s)")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
