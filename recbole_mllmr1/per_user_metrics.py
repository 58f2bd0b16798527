"""Per-user ranking metrics (HR@k, NDCG@k, MRR@k) and their expectation under a random ranking.

RecBole reports only the mean over users; a paired significance test needs each user's
value. :class:`PerUserCollector` keeps what RecBole's evaluator reads (``rec.topk``: the
top-k hit matrix with each user's positive count in the last column) together with the
user of each row, and :func:`metrics_from_topk` turns it into per-user vectors with
RecBole's own formulas (recbole/evaluator/metrics.py: Hit, NDCG, MRR), so their means are
RecBole's numbers.
"""
import numpy as np
import torch
from recbole.evaluator import Collector


def metrics_for_topk(topk):
    """RecBole's result keys a comparison reports for ``topk``, in table order: HR at every k, NDCG at
    every k above 1 (NDCG@1 is HR@1 with one positive), MRR at the largest k."""
    ks = sorted(set(int(k) for k in topk))
    return tuple([f"hit@{k}" for k in ks] + [f"ndcg@{k}" for k in ks if k > 1] + [f"mrr@{ks[-1]}"])


# The default comparison's keys (topk 1, 5, 10): hit@1, hit@5, hit@10, ndcg@5, ndcg@10, mrr@10.
METRICS = metrics_for_topk((1, 5, 10))


def _parse(metric):
    name, k = metric.split("@")
    return name, int(k)


def max_k(metrics=METRICS):
    return max(_parse(metric)[1] for metric in metrics)


def metrics_from_topk(pos_index, pos_len, metrics=METRICS):
    """Per-user values of ``metrics`` from RecBole's top-k hits.

    ``pos_index``: ``[users, K]`` booleans, whether the item at each rank is a positive;
    ``pos_len``: ``[users]`` positives per user. Returns ``{metric: float64 [users]}``.
    """
    pos_index = np.asarray(pos_index, dtype=bool)
    pos_len = np.asarray(pos_len, dtype=np.int64)
    ranks = np.arange(1, pos_index.shape[1] + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    first_hit = np.where(pos_index.any(axis=1), pos_index.argmax(axis=1) + 1, np.iinfo(np.int64).max)
    values = {}
    for metric in metrics:
        name, k = _parse(metric)
        if k > pos_index.shape[1]:
            raise ValueError(f"metric [{metric}] needs the top {k}, but only the top {pos_index.shape[1]} was recorded.")
        if name == "hit":
            values[metric] = (first_hit <= k).astype(np.float64)
        elif name == "mrr":
            values[metric] = np.where(first_hit <= k, 1.0 / np.minimum(first_hit, k + 1), 0.0)
        elif name == "ndcg":
            dcg = (pos_index[:, :k] * discounts[:k]).sum(axis=1)
            ideal = np.cumsum(discounts[:k])[np.clip(np.minimum(pos_len, k), 1, k) - 1]
            values[metric] = dcg / ideal
        else:
            raise ValueError(f"metric [{metric}] is not one of hit@k, ndcg@k, mrr@k.")
    return values


def random_ranking_metrics(n_candidates, metrics=METRICS):
    """Expected ``metrics`` when the single positive sits at a uniformly random rank among ``n_candidates``.

    Every rank 1..n is equally likely, so the expectation is the mean over the n possible
    positions, each scored by :func:`metrics_from_topk` itself.
    """
    if n_candidates < 1:
        raise ValueError(f"n_candidates [{n_candidates}] must be at least 1.")
    depth = max_k(metrics)
    pos_index = np.zeros((n_candidates, depth), dtype=bool)
    seen = min(n_candidates, depth)
    pos_index[np.arange(seen), np.arange(seen)] = True  # positive at rank r (r <= depth); deeper ranks score 0
    per_rank = metrics_from_topk(pos_index, np.ones(n_candidates, dtype=np.int64), metrics)
    return {metric: float(values.mean()) for metric, values in per_rank.items()}


class PerUserCollector(Collector):
    """RecBole's Collector that also keeps every evaluation's per-user top-k hits, in order.

    ``evaluations[i]`` is ``(user_ids [users], rec.topk [users, K + 1])`` of the i-th
    evaluation (validations during training, then the test evaluation(s)).
    """

    def __init__(self, config):
        super().__init__(config)
        if not self.register.need("rec.topk"):
            raise ValueError(f"metrics {config['metrics']} need no top-k ranking: add Hit, NDCG or MRR to `metrics`.")
        self._batch_users = []
        self.evaluations = []

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        # Each user's rows are contiguous (one row in full ranking, 1 + N rows in sampled ranking).
        users = torch.unique_consecutive(interaction[self.config["USER_ID_FIELD"]].cpu())
        if len(users) != scores_tensor.shape[0]:
            raise RuntimeError(f"{len(users)} users in the batch but {scores_tensor.shape[0]} score rows: cannot label rows by user.")
        self._batch_users.append(users)

    def get_data_struct(self):
        struct = super().get_data_struct()
        self.evaluations.append((torch.cat(self._batch_users).numpy(), struct.get("rec.topk").numpy()))
        self._batch_users = []
        return struct

    def per_user(self, index=-1, metrics=METRICS):
        """``(user_ids, {metric: values})`` of evaluation ``index`` (default: the most recent)."""
        if not self.evaluations:
            raise RuntimeError("No evaluation has been collected yet.")
        user_ids, topk_hits = self.evaluations[index]
        return user_ids, metrics_from_topk(topk_hits[:, :-1], topk_hits[:, -1], metrics)
