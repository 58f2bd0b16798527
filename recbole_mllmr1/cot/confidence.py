"""Measured confidence of a rationale: what it does to the scoring model's belief in the true target.

Not the teacher's self-report: the recommender's own LLM scores the sample's candidate prompt
twice through :class:`~recbole_mllmr1.scoring.TitleScorer`, once as is and once with the
rationale opened as ``<think>rationale</think>\\n`` before ``<answer>`` (exactly the SFT
completion's prefix). A rationale is reliable when it makes the true target more likely.
"""
from dataclasses import dataclass

import numpy as np
import torch

from recbole_mllmr1.cot.cache import content_key
from recbole_mllmr1.prompts import ANSWER_OPEN, format_answer
from recbole_mllmr1.training_samples import sample_messages


@dataclass(frozen=True)
class Confidence:
    probability: float  # P(target | rationale), renormalised over the sample's candidates
    rank: int  # of the target given the rationale; 1 = top, ties counted against the target
    log_prob: float  # log P(target | rationale)
    log_prob_without: float  # log P(target) with no rationale

    @property
    def gain(self):
        """How much the rationale raises the target's log-probability (negative: it misleads)."""
        return self.log_prob - self.log_prob_without


def rationale_prefix(rationale_text):
    """The assistant text before ``<answer>`` in a CoT completion: ``<think>...</think>\\n``."""
    completion = format_answer("", rationale_text)
    return completion[: completion.index(ANSWER_OPEN)]


def scoring_prompts(model, sample, rationale_text):
    """``(prompt with the rationale, prompt without)``, both ending in ``<answer>``."""
    messages = sample_messages(model, sample)
    return model.render_prompt(messages, rationale_prefix(rationale_text)), model.render_prompt(messages)


def measure(log_probs_with, log_probs_without, target_index):
    """The :class:`Confidence` of one sample from its two log-probability vectors over the candidates."""
    with_rationale = np.asarray(log_probs_with, dtype=np.float64)
    target = with_rationale[target_index]
    return Confidence(
        probability=float(np.exp(target)),
        rank=int(np.sum(with_rationale >= target)),
        log_prob=float(target),
        log_prob_without=float(log_probs_without[target_index]),
    )


def drop_reason(confidence, min_gain, min_prob):
    """Why a rationale is not reliable, or None when it clears every configured threshold."""
    if min_gain is not None and not confidence.gain > min_gain:
        return f"gain {confidence.gain:+.4f} <= cot_min_gain {min_gain:+.4f}"
    if min_prob is not None and confidence.probability < min_prob:
        return f"probability {confidence.probability:.4f} < cot_min_prob {min_prob:.4f}"
    return None


# Summing every weight of a 135M model takes seconds on a busy CPU; a strided sample of each
# tensor still changes with any training step (full fine-tuning moves every weight, and
# LoRA adds small named tensors that are sampled whole).
_FINGERPRINT_STRIDE = 1009


@torch.no_grad()
def weights_fingerprint(module):
    """A cheap digest of every parameter: name, shape and the sum of a strided sample of its values."""
    return content_key(
        [
            (name, list(parameter.shape), f"{float(parameter.detach().flatten()[::_FINGERPRINT_STRIDE].double().sum()):.9g}")
            for name, parameter in module.named_parameters()
        ]
    )


def scorer_identity(model):
    """What the model's scores depend on besides the prompt text: the weights of its language model."""
    return weights_fingerprint(model.language_model)


# Prompts scored between two writes of the score cache: a crash loses at most this many.
_CACHE_BATCH = 8


def cached_log_probs(model, identity, prompts, candidate_titles, cache, show_progress=False):
    """``model.title_log_probs`` of every prompt, computed only for prompts the cache lacks.

    ``identity`` is :func:`scorer_identity` of the model, computed once by the caller.
    """
    keys = [content_key("title-log-probs", identity, prompt, titles) for prompt, titles in zip(prompts, candidate_titles)]

    def compute(items):
        results = model.title_log_probs([prompt for prompt, _ in items], [titles for _, titles in items])
        return [[float(x) for x in log_probs] for log_probs in results]

    return cache.fill(
        keys, list(zip(prompts, candidate_titles)), compute, _CACHE_BATCH,
        desc="CoT confidence", show_progress=show_progress, stage="confidence", scorer=identity,
    )
