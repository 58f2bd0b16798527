"""Score every candidate of a prompt with one forward pass of the LLM.

The prompt ends with the assistant's ``<answer>`` prefix; the model's next-token
distribution over the candidate letters, renormalised over the letters actually listed,
is the score. One forward per prompt (batched, left-padded) scores all its candidates.
"""
import torch

from recbole_mllmr1.prompts import ANSWER_OPEN, CANDIDATE_LABELS


def label_token_ids(tokenizer, prefix=ANSWER_OPEN, labels=CANDIDATE_LABELS):
    """Token id of each label as it follows ``prefix``; each must be exactly one token."""
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for label in labels:
        full = tokenizer(prefix + label, add_special_tokens=False)["input_ids"]
        if full[: len(prefix_ids)] != prefix_ids or len(full) != len(prefix_ids) + 1:
            raise ValueError(
                f"The tokenizer does not encode {prefix + label!r} as {prefix!r} plus one token; "
                "this LLM cannot be scored with single-letter candidate labels."
            )
        ids.append(full[-1])
    return torch.tensor(ids)


def render_prompt(tokenizer, messages, assistant_prefix=""):
    """Chat-template text for ``messages`` with the assistant turn opened and ``<answer>`` started."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix + ANSWER_OPEN


class LabelScorer:
    """Log-probabilities of the listed candidate letters at the answer position."""

    def __init__(self, model, tokenizer, batch_size=8):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.label_ids = label_token_ids(tokenizer)

    def encode(self, prompts):
        batch = self.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        batch = {key: value.to(self.model.device) for key, value in batch.items()}
        # Left padding: positions must count real tokens only, or padded rows score differently.
        batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return batch

    def label_logits(self, prompts):
        """``[len(prompts), n_labels]`` logits of every label at the last position (differentiable)."""
        batch = self.encode(prompts)
        logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :]
        return logits[:, self.label_ids.to(logits.device)].float()

    @torch.no_grad()
    def log_probs(self, prompts, n_candidates):
        """For each prompt, log-softmax over its first ``n`` labels (the candidates it lists)."""
        results = []
        for start in range(0, len(prompts), self.batch_size):
            logits = self.label_logits(prompts[start : start + self.batch_size]).cpu()
            for row, n in zip(logits, n_candidates[start : start + self.batch_size]):
                results.append(torch.log_softmax(row[:n], dim=-1))
        return results
