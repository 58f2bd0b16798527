"""The table's columns: metric labels, the metric the significance tests use, and results.csv's header."""
from recbole_mllmr1.per_user_metrics import METRICS

# The metric that picks the best baseline and that the paired test is run on.
SIGNIFICANCE_METRIC = "ndcg@10"
RANDOM_ROW = "random"
_METRIC_LABELS = {"hit": "HR", "ndcg": "NDCG", "mrr": "MRR"}


def metric_label(metric):
    name, k = metric.split("@")
    return f"{_METRIC_LABELS[name]}@{k}"


# Trained stages against the untrained model of the same run.
GAIN_COLUMN = f"gain vs zero-shot ({metric_label(SIGNIFICANCE_METRIC)})"
GAIN_P_COLUMN = "p vs zero-shot"


def table_columns(metrics=METRICS):
    metric_columns = [column for metric in metrics for column in (metric_label(metric), f"{metric_label(metric)} std")]
    return (
        ["row", "model", "seeds", "users"]
        + metric_columns
        + ["train s", "eval s", "params trainable", "params total", f"p ({metric_label(SIGNIFICANCE_METRIC)})",
           "vs best baseline", GAIN_COLUMN, GAIN_P_COLUMN, "config", "config hash", "error"]
    )
