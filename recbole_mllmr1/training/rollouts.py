"""GRPO rollouts that run each prompt once: TRL's GRPOTrainer with a shared prompt cache.

TRL's sampler repeats every prompt ``num_generations`` times, and its transformers path
(no vLLM, no continuous batching) hands ``generate`` the left-padded batch: each prompt is
run through the model once per rollout before the first completion token is drawn. On a CPU
the repeated prefill is about a quarter of a GRPO step of the main command (4 rollouts of a
~390-token prompt; a completion is ~20 tokens; benchmarks/bench_training.py). Here ``generate``
first runs every distinct prompt once, less its last token, and hands the rows its key/value
cache, left-padded like the rows themselves; ``generate`` then runs only each row's last prompt
token and the completion. The positions, the mask and the sampling are the ones TRL's call would
use, so with ``lora_dropout: 0`` the completions are those of TRL's own path
(tests/test_rollouts.py). With dropout, which TRL leaves on while it generates, a group's rollouts
share one dropout draw over their prompt, as they share its cache.
"""
import contextlib

import torch
from trl import GRPOTrainer

from recbole_mllmr1.llm import cache_keyword, key_value_cache, prompt_key_values


def shared_prompt_cache(model, input_ids, attention_mask):
    """A cache of every row's prompt but its last token, computed once per distinct prompt.

    ``input_ids`` / ``attention_mask``: the left-padded ``[rows, width]`` batch ``generate``
    receives. The cache holds ``width - 1`` positions per row, the row's prefix right-aligned
    (its padding columns are zeros that the row's attention mask hides). Returns None when every
    row is distinct (nothing to share) or when the model returns no cache (it then generates as TRL
    asked).
    """
    distinct, row_prompt = torch.unique(input_ids, dim=0, return_inverse=True)
    if len(distinct) == len(input_ids):
        return None
    prefix_width = input_ids.shape[1] - 1
    keys, values = [], []  # per distinct prompt: per layer [1, heads, prefix_width, head_dim]
    for prompt in range(len(distinct)):
        row = int((row_prompt == prompt).nonzero()[0])
        prefix = input_ids[row, :-1][attention_mask[row, :-1].bool()]
        prompt_layers = prompt_key_values(model, prefix[None])
        if prompt_layers is None:
            return None
        pad = prefix_width - len(prefix)
        keys.append([torch.nn.functional.pad(layer_keys, (0, 0, pad, 0)) for layer_keys, _ in prompt_layers])
        values.append([torch.nn.functional.pad(layer_values, (0, 0, pad, 0)) for _, layer_values in prompt_layers])
    layers = [
        (torch.cat([k[layer] for k in keys])[row_prompt], torch.cat([v[layer] for v in values])[row_prompt])
        for layer in range(len(keys[0]))
    ]
    return key_value_cache(model, layers)


@contextlib.contextmanager
def shared_prompt_generation(model):
    """While active, ``model.generate`` runs each distinct prompt of a batch once (:func:`shared_prompt_cache`).

    A call that brings its own cache or extra inputs (images), or whose rows are all distinct,
    goes to ``generate`` unchanged.
    """
    generate = model.generate
    keyword = cache_keyword(model)

    def generate_with_shared_prompts(input_ids=None, attention_mask=None, **kwargs):
        extra = set(kwargs) - {"generation_config"}
        cache = None
        if input_ids is not None and attention_mask is not None and not extra and input_ids.shape[1] > 1:
            with torch.no_grad():
                cache = shared_prompt_cache(model, input_ids, attention_mask)
        if cache is None:
            return generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return generate(input_ids=input_ids, attention_mask=attention_mask, **{keyword: cache}, **kwargs)

    model.generate = generate_with_shared_prompts
    try:
        yield
    finally:
        del model.generate  # the instance attribute; the class's generate shows through again


class SharedPromptGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer whose transformers-path rollouts run each prompt once (:func:`shared_prompt_generation`)."""

    def _generate_single_turn(self, *args, **kwargs):
        if self.use_vllm or self.use_transformers_continuous_batching:
            return super()._generate_single_turn(*args, **kwargs)
        with shared_prompt_generation(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(*args, **kwargs)
