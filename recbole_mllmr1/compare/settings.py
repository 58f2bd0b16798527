"""What one ``compare`` invocation asks for: the settings every other module reads, and the
parsing of its evaluation mode and ``--config`` overrides."""
import os
import re
from dataclasses import dataclass

import yaml

from recbole_mllmr1.known_keys import check_known_keys


@dataclass
class Settings:
    dataset: str
    mode: str  # the test mode
    valid_mode: str  # the validation mode: early stopping and adapter selection
    models: list
    seeds: list
    out: str
    # MLLMRecR1's trainings, named by the trainer's run key, which leaves out what only changes the
    # test (the test mode, ``fusion_weight``, ``eval_scoring``, ...): rows, and comparisons, that
    # share the folder and differ only there train once.
    trainings: str
    force: bool
    eval_user_sample: int
    data_path: str
    rerank_topk: int
    config_items: list
    overrides: dict
    model_overrides: dict
    config_files: list = ()  # the user's yaml files, read by every row after its baseline yaml
    topk: tuple = (1, 5, 10)  # RecBole's topk for every row

    @property
    def metrics(self):
        """The table's metrics (:func:`recbole_mllmr1.per_user_metrics.metrics_for_topk`)."""
        from recbole_mllmr1.per_user_metrics import metrics_for_topk  # imports torch: not for `compare --help`

        return metrics_for_topk(self.topk)


def default_trainings(out):
    """``--trainings`` when not given: the comparison's own ``<out>/trainings``."""
    return os.path.join(out, "trainings")


def parse_mode(mode, option="--mode"):
    """Number of candidates per test user for ``uniN`` / ``popN`` (N + 1), or None for ``full``."""
    if mode == "full":
        return None
    match = re.fullmatch(r"(uni|pop)(\d+)", mode)
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"{option} [{mode}] is not an evaluation mode: use full, uniN or popN (e.g. uni9, uni99).")
    return int(match.group(2)) + 1


def parse_topk(text):
    """``--topk 3,5,10`` (or a ``topk`` key's list) as a tuple of positive ints holding 10: NDCG@10 is
    the metric of every significance test and of the best baseline."""
    values = text if isinstance(text, (list, tuple)) else [item.strip() for item in str(text).strip("[]").split(",") if item.strip()]
    try:
        topk = tuple(sorted({int(value) for value in values}))
    except (TypeError, ValueError):
        topk = ()
    if not topk or topk[0] < 1 or 10 not in topk:
        raise ValueError(f"--topk [{text}] must be positive cut-offs that include 10 (NDCG@10 is the tested metric), e.g. --topk 3,5,10.")
    return topk


def parse_overrides(items):
    """``KEY=VALUE`` (every row) and ``MODEL.KEY=VALUE`` (that model's rows); VALUE is read as YAML.

    Returns ``(overrides for every row, {model: overrides})``.
    """
    common, per_model = {}, {}
    for item in items or []:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--config [{item}] is not KEY=VALUE (or MODEL.KEY=VALUE), e.g. --config epochs=2.")
        model, _, key = key.strip().rpartition(".")
        # Every row would fail on its own, after the others had run: stop before any.
        check_known_keys([key], f"--config [{item}]")
        (per_model.setdefault(model, {}) if model else common)[key] = yaml.safe_load(value)
    return common, per_model
