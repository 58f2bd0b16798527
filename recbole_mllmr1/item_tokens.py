"""Hybrid item tokens (LLaRA): one extra token per item whose input embedding is a projected
collaborative embedding.

Every item listed in a prompt is followed by its own token, ``Star Wars (1977) <|item_50|>``. The
token's input embedding is ``item_projector(item_embeddings[item])``: the item embeddings are the
frozen ``item_embedding.weight`` of a trained RecBole sequential model (row 0 = padding) and the
projector is LLaRA's MLP (``model/mlp_projector.py``: Linear -> GELU -> Linear).

The item tokens travel as ordinary ``input_ids``: the model's input embedding is replaced by
:class:`ItemTokenEmbedding`, which routes ids at or above ``first_item_id`` through the projector.
TRL's SFT/GRPO, ``generate`` and the scorer's ``model(input_ids=...)`` therefore need no special
path. The LM head stays over the real vocabulary (SmolLM2 ties it to the input embedding, and
:attr:`ItemTokenEmbedding.weight` is the word embedding), so an item token is never generated and
every softmax stays over the real vocabulary.

Training starts on text-only prompts and mixes in the hybrid form (LLaRA's curriculum,
``data/data_interface.py``): :class:`ItemTokenCurriculum` strips the item tokens from a share of
the examples that falls linearly to zero over ``ramp * max_steps`` steps.
"""
import copy

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback


def item_token_text(item_id):
    """The token that follows item ``item_id`` (RecBole's internal id) in a prompt."""
    return f"<|item_{item_id}|>"


def add_item_tokens(tokenizer, n_items, vocab_size):
    """Add one special token per item (ids 0 .. n_items - 1) and return the id of item 0's token.

    The ids must be contiguous (item i is ``first + i``, so the embedding finds an item by
    subtraction) and at or above the model's ``vocab_size`` (an id below it is a row of the model's
    own embedding and LM head, which the item token would silently share). A model whose vocabulary
    is padded beyond its tokenizer (Qwen: 151,936 rows, 151,665 tokens) first gets reserved filler
    tokens for the unused rows, so the item tokens start right at ``vocab_size``. ``add_tokens``
    skips tokens the tokenizer already has, so calling it again returns the existing first id.
    """
    texts = [item_token_text(item) for item in range(n_items)]
    if texts[0] not in tokenizer.get_vocab() and len(tokenizer) < vocab_size:
        fillers = [f"<|item_reserved_{k}|>" for k in range(vocab_size - len(tokenizer))]
        tokenizer.add_tokens(fillers, special_tokens=True)
    tokenizer.add_tokens(texts, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(texts)
    first = ids[0]
    if ids != list(range(first, first + n_items)):
        raise ValueError(
            f"the {n_items} item tokens got non-contiguous ids ({first} .. {max(ids)}): the tokenizer already "
            "held some of them, or other tokens were added in between"
        )
    if first < vocab_size:
        raise ValueError(
            f"the item tokens would start at id {first}, below the model's vocab_size {vocab_size}: they would "
            f"collide with the model's own embedding rows (the tokenizer has {first} tokens before them, the "
            f"model {vocab_size} rows)"
        )
    return first


class ItemTokenEmbedding(nn.Module):
    """The LLM's input embedding extended with projected item embeddings for ids >= ``first_item_id``.

    ``word_embeddings`` stays a submodule (the same object), and :attr:`weight` is its weight, so
    HF's ``tie_weights`` keeps the LM head tied to the real vocabulary only. ``item_embeddings`` is a
    frozen, non-persistent buffer: it comes from the RecBole model each run, so it is neither
    trained nor saved with the adapter. ``item_projector`` is the trainable part; PEFT's
    ``modules_to_save=["item_projector"]`` saves it with the LoRA adapter.
    """

    def __init__(self, word_embeddings, item_embeddings, first_item_id, projector_hidden_size=None):
        super().__init__()
        self.word_embeddings = word_embeddings
        self.first_item_id = first_item_id
        device = word_embeddings.weight.device
        item_embeddings = torch.as_tensor(item_embeddings).detach().to(device=device, dtype=torch.float32, copy=True)
        self.register_buffer("item_embeddings", item_embeddings, persistent=False)
        d_seq, d_llm = item_embeddings.shape[1], word_embeddings.embedding_dim
        hidden = projector_hidden_size or d_llm
        # fp32 like PEFT's adapters: the projector is trained, the LLM may be bf16.
        self.item_projector = nn.Sequential(
            nn.Linear(d_seq, hidden), nn.GELU(), nn.Linear(hidden, d_llm)
        ).to(device=device, dtype=torch.float32)

    @property
    def weight(self):
        return self.word_embeddings.weight

    @property
    def num_embeddings(self):
        return self.word_embeddings.num_embeddings

    @property
    def embedding_dim(self):
        return self.word_embeddings.embedding_dim

    @property
    def n_items(self):
        return self.item_embeddings.shape[0]

    def project(self, items):
        """Projected embeddings of the item ids ``items`` (a 1-D tensor), in the word embedding's dtype."""
        projector_dtype = next(self.item_projector.parameters()).dtype
        projected = self.item_projector(self.item_embeddings[items].to(projector_dtype))
        return projected.to(self.word_embeddings.weight.dtype)

    def forward(self, input_ids):
        is_item = input_ids >= self.first_item_id
        if bool((input_ids >= self.first_item_id + self.n_items).any()):
            raise IndexError(
                f"item token id {int(input_ids.max())} is out of range: the {self.n_items} item tokens are "
                f"ids {self.first_item_id} .. {self.first_item_id + self.n_items - 1}"
            )
        # Item positions look up row 0 and are overwritten below; the projector runs even on zero
        # items so it is always in the graph (DDP expects every trainable parameter to get a grad).
        embeds = self.word_embeddings(torch.where(is_item, 0, input_ids))
        projected = self.project(input_ids[is_item] - self.first_item_id)
        return embeds.index_put((is_item,), projected)


def install_item_tokens(llm, tokenizer, item_embeddings, projector_hidden_size=None):
    """Add the item tokens to ``tokenizer`` and wrap ``llm``'s input embedding; returns ``first_item_id``.

    Call it before PEFT wraps the model, so ``modules_to_save=["item_projector"]`` finds the
    projector. The projector's initial weights come from torch's global generator: seed it first.
    """
    first = add_item_tokens(tokenizer, len(item_embeddings), llm.config.vocab_size)
    embedding = ItemTokenEmbedding(llm.get_input_embeddings(), item_embeddings, first, projector_hidden_size)
    llm.set_input_embeddings(embedding)
    return first


def projector_of(llm):
    """The :class:`ItemTokenEmbedding` of ``llm`` (plain or PEFT-wrapped), or None without item tokens."""
    embedding = llm.get_input_embeddings()
    return embedding if isinstance(embedding, ItemTokenEmbedding) else None


# ---- curriculum --------------------------------------------------------------------------------
def hybrid_share(step, max_steps, ramp):
    """Share of examples that keep their item tokens at ``step``: rises linearly from 0 to 1 over the
    first ``ramp`` fraction of training (``ramp == 0``: hybrid from the start)."""
    if ramp == 0:
        return 1.0
    return min(1.0, step / (ramp * max_steps))


class ItemTokenCurriculum:
    """A data collator that strips the item tokens from ``1 - hybrid_share`` of the examples, then
    calls the wrapped collator (TRL's ``DataCollatorForLanguageModeling``).

    TRL 1.x hands the collator examples of ``input_ids`` and ``labels`` (masks are folded into the
    labels during dataset preparation), plus ``seq_lengths`` when packing; other per-token lists
    (``attention_mask``, ``completion_mask``, ...) are stripped alike. The draw for the j-th example
    collated at step s (j counts on across the micro-batches of one step) is
    ``default_rng([seed, s, j])``: a function of where training is, not of a generator's history, so
    a resumed run draws like the original. :class:`CurriculumCallback` keeps :attr:`step` and
    :attr:`max_steps` current; it needs the collator in the trainer's process
    (``dataloader_num_workers=0``). :attr:`stripped` / :attr:`seen` count examples since creation.
    """

    def __init__(self, collator, first_item_id, ramp, seed):
        self.collator = collator
        self.first_item_id = first_item_id
        self.ramp = ramp
        self.seed = seed
        self.step = 0
        self.max_steps = 1
        self.stripped = 0
        self.seen = 0
        self._drawn_at = (None, 0)  # (step, examples drawn at that step): j counts across micro-batches

    def __call__(self, examples):
        share = hybrid_share(self.step, self.max_steps, self.ramp)
        step, drawn = self._drawn_at if self._drawn_at[0] == self.step else (self.step, 0)
        collated = []
        for j, example in enumerate(examples, start=drawn):
            strip = np.random.default_rng([self.seed, step, j]).random() >= share
            collated.append(strip_item_tokens(example, self.first_item_id) if strip else example)
            self.stripped += int(strip)
        self._drawn_at = (step, drawn + len(examples))
        self.seen += len(examples)
        return self.collator(collated)


def strip_item_tokens(example, first_item_id):
    """``example`` without the positions whose input id is an item token, in every per-token list."""
    keep = [token < first_item_id for token in example["input_ids"]]
    stripped = {}
    for key, value in example.items():
        if key == "seq_lengths":  # packed segments: each loses its own item tokens
            stripped[key] = _segment_lengths(value, keep)
        elif not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and len(value) == len(keep):
            stripped[key] = [item for item, kept in zip(value, keep) if kept]
        else:
            stripped[key] = value
    return stripped


def _segment_lengths(seq_lengths, keep):
    bounds = np.cumsum([0, *seq_lengths])
    return [sum(keep[start:end]) for start, end in zip(bounds[:-1], bounds[1:])]


class CurriculumCallback(TrainerCallback):
    """Tells an :class:`ItemTokenCurriculum` the trainer's step and step count.

    Also at train begin, so a resumed run does not collate its first batches as if at step 0 of 1.
    The trainer collates an update's batches before that update's ``on_step_begin``, so the schedule
    runs one update behind the optimizer (and a resumed run's first update draws with the resumed
    step rather than the one before): immaterial for a ramp over many steps.
    """

    def __init__(self, curriculum):
        self.curriculum = curriculum

    def _sync(self, state):
        self.curriculum.step = state.global_step
        self.curriculum.max_steps = state.max_steps

    def on_train_begin(self, args, state, control, **kwargs):
        self._sync(state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync(state)


# ---- export ------------------------------------------------------------------------------------
def export_hybrid_checkpoint(llm, tokenizer, folder):
    """Save ``llm`` (a plain HF causal LM with item tokens, PEFT already merged) as a checkpoint that
    ``AutoModelForCausalLM.from_pretrained`` loads without this plugin.

    The input embedding grows to ``vocab_size + n_items`` rows, the item rows being the projected
    item embeddings (fixed from now on). The LM head is untied and grows alike: its original rows are
    the current head, its item rows are zero, so logits over the original vocabulary are unchanged.
    A zero logit can beat the real tokens, so the item ids go into ``generation_config.suppress_tokens``
    to keep plain ``generate`` from emitting them. ``llm`` itself is left untouched.
    """
    model = copy.deepcopy(llm)
    embedding = projector_of(model)
    if embedding is None:
        raise ValueError("the model has no item tokens installed (see install_item_tokens)")
    if embedding.first_item_id != embedding.num_embeddings:
        # The item rows are appended to the vocabulary: they must be the ids right after it.
        raise ValueError(
            f"the item tokens start at id {embedding.first_item_id}, not right after the model's "
            f"{embedding.num_embeddings} vocabulary rows: the tokenizer has tokens the model cannot embed"
        )
    head = model.get_output_embeddings()
    with torch.no_grad():
        items = embedding.project(torch.arange(embedding.n_items, device=embedding.weight.device))
        weight = torch.cat([embedding.weight, items])
        head_weight = torch.cat([head.weight, head.weight.new_zeros(embedding.n_items, head.weight.shape[1])])
    rows = weight.shape[0]
    new_embedding = nn.Embedding(rows, weight.shape[1], padding_idx=embedding.word_embeddings.padding_idx,
                                 device=weight.device, dtype=weight.dtype)
    new_embedding.weight.data.copy_(weight)
    new_head = nn.Linear(head_weight.shape[1], rows, bias=head.bias is not None,
                         device=head_weight.device, dtype=head_weight.dtype)
    new_head.weight.data.copy_(head_weight)
    if head.bias is not None:
        new_head.bias.data.copy_(torch.cat([head.bias.data, head.bias.new_zeros(embedding.n_items)]))
    model.config.tie_word_embeddings = False
    model.config.vocab_size = rows
    model.set_input_embeddings(new_embedding)
    model.set_output_embeddings(new_head)
    first = embedding.first_item_id
    model.generation_config.suppress_tokens = list(range(first, first + embedding.n_items))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
