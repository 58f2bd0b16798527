"""Score every candidate of a prompt by the probability that the model answers with its title.

The prompt ends with the assistant's ``<answer>`` prefix. A candidate's score is the
log-probability of the tokens of ``<its title></answer>`` after it, exactly as SFT trains
the model to write them; the scores of one prompt's candidates are renormalised among
themselves. The prompt is run once and its key/value cache is shared by all its
candidates, so a prompt of n candidates costs one long forward and n short ones.
"""
import inspect

import torch

from recbole_mllmr1.prompts import ANSWER_CLOSE, ANSWER_OPEN


def render_prompt(tokenizer, messages, assistant_prefix=""):
    """Chat-template text for ``messages`` with the assistant turn opened and ``<answer>`` started."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix + ANSWER_OPEN


def _common_prefix_length(sequences):
    shortest = min(len(s) for s in sequences)
    for position in range(shortest):
        if len({s[position] for s in sequences}) > 1:
            return position
    return shortest


def _cache_keyword(model):
    """The forward argument that takes a key/value cache: ``cache`` from transformers 5.24, before it ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class TitleScorer:
    """Log-probabilities of each listed candidate's title as the answer to a prompt."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.cache_keyword = _cache_keyword(model)

    def answer_ids(self, prompt, titles):
        """``(shared prefix ids, continuation ids per title, first scored position per title)``.

        ``prompt + title + </answer>`` is tokenized whole, as SFT tokenizes prompt and
        completion: a title whose first characters merge with the ``>`` that ends the prompt
        is scored on the tokens it trains on, from the first token that differs from the
        prompt's own. The prefix shared by every title is run once.
        """
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        encoded = [
            self.tokenizer(prompt + title + ANSWER_CLOSE, add_special_tokens=False)["input_ids"] for title in titles
        ]
        answer_starts = [_common_prefix_length([prompt_ids, ids]) for ids in encoded]
        # The first scored token of every title is read from the prefix's last position.
        shared = min(answer_starts)
        return encoded[0][:shared], [ids[shared:] for ids in encoded], [start - shared for start in answer_starts]

    def title_log_likelihoods(self, prompt, titles):
        """``[len(titles)]`` summed log-probabilities of each title's answer tokens (differentiable)."""
        prefix, continuations, first_scored = self.answer_ids(prompt, titles)
        device = self.model.device
        # Only the last prefix position predicts an answer token: skip the LM head elsewhere.
        prefix_out = self.model(input_ids=torch.tensor([prefix], device=device), use_cache=True, logits_to_keep=1)
        first_log_probs = torch.log_softmax(prefix_out.logits[0, -1].float(), dim=-1)
        cache = prefix_out[self.cache_keyword]
        n, longest = len(titles), max(len(c) for c in continuations)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((n, longest), pad, dtype=torch.long, device=device)
        mask = torch.zeros((n, longest), dtype=torch.long, device=device)
        scored = torch.zeros((n, longest), dtype=torch.bool, device=device)
        for row, (continuation, first) in enumerate(zip(continuations, first_scored)):
            ids[row, : len(continuation)] = torch.tensor(continuation, device=device)
            mask[row, : len(continuation)] = 1
            scored[row, first : len(continuation)] = True
        cache.batch_repeat_interleave(n)
        # Right padding: the padded tail is never read, so the real tokens keep their positions.
        positions = torch.arange(len(prefix), len(prefix) + longest, device=device).expand(n, longest)
        logits = self.model(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones((n, len(prefix)), dtype=torch.long, device=device), mask], dim=1),
            position_ids=positions,
            **{self.cache_keyword: cache},
        ).logits.float()
        token_log_probs = torch.cat(
            [
                first_log_probs[ids[:, :1]],
                torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0],
            ],
            dim=1,
        )
        return torch.where(scored, token_log_probs, torch.zeros_like(token_log_probs)).sum(dim=1)

    def candidate_log_probs(self, prompt, titles):
        """Log-softmax of the titles' likelihoods: the prompt's distribution over its candidates."""
        return torch.log_softmax(self.title_log_likelihoods(prompt, titles), dim=-1)

    @torch.no_grad()
    def log_probs(self, prompts, candidate_titles):
        """For each prompt, its distribution over its own candidates' titles (log-probabilities)."""
        return [self.candidate_log_probs(prompt, titles).cpu() for prompt, titles in zip(prompts, candidate_titles)]
