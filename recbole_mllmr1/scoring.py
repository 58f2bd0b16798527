"""Score every candidate of a prompt by the probability that the model answers with its title.

The prompt ends with the assistant's ``<answer>`` prefix. A candidate's score is the
log-probability of the tokens of ``<its title></answer>`` after it, exactly as SFT trains
the model to write them; the scores of one prompt's candidates are renormalised among
themselves.

Evaluation (:meth:`TitleScorer.log_probs`) scores many prompts per forward pass: each row
packs one prompt followed by all its candidates' titles, and an attention mask lets every
title see the prompt and itself only, with positions that restart after the prompt for each
title, so every title is scored exactly as if it followed the prompt alone while the prompt
is run once. The opening that every prompt of the call shares (the system prompt, the start of
the user turn) is run once for all of them, and the rows read it from its key/value cache. The
LM head is applied only where a title token is read.
:meth:`TitleScorer.title_log_likelihoods` scores one prompt on its shared key/value cache
(differentiable, for training); it is the reference the packed rows are tested against.
"""
import numpy as np
import torch

from recbole_mllmr1.llm import cache_keyword, key_value_cache, prompt_key_values
from recbole_mllmr1.prompts import ANSWER_CLOSE, ANSWER_OPEN, CHAT_TEMPLATE_KWARGS


def render_prompt(tokenizer, messages, assistant_prefix=""):
    """Chat-template text for ``messages`` with the assistant turn opened at ``assistant_prefix`` and ``<answer>`` started.

    The template renders the assistant turn itself, as SFT renders a completion, and the text is
    cut after its ``<answer>``: a template that rewrites replies (Qwen3 closes an empty ``<think>``
    block before a plain answer and puts a rationale's ``<think>`` on lines of its own) is scored
    on exactly the text SFT trains on. For a template that copies replies verbatim (SmolLM2's)
    this is the generation prompt followed by ``assistant_prefix`` and ``<answer>``.
    """
    reply = {"role": "assistant", "content": assistant_prefix + ANSWER_OPEN + ANSWER_CLOSE}
    text = tokenizer.apply_chat_template([*messages, reply], tokenize=False, **CHAT_TEMPLATE_KWARGS)
    answer_at = text.rfind(ANSWER_OPEN + ANSWER_CLOSE)
    if answer_at < 0:
        raise ValueError(f"the chat template drops the assistant's {ANSWER_OPEN}{ANSWER_CLOSE} from its reply: it cannot be scored")
    return text[: answer_at + len(ANSWER_OPEN)]


def _common_prefix_length(sequences):
    shortest = min(len(s) for s in sequences)
    for position in range(shortest):
        if len({s[position] for s in sequences}) > 1:
            return position
    return shortest


def shared_opening_length(prefixes):
    """How many opening tokens all ``prefixes`` share and run once, each keeping its last token.

    The last prefix token predicts the titles' first tokens, so every prompt runs it itself.
    """
    if not prefixes:
        return 0
    return max(0, min(_common_prefix_length(prefixes), min(len(prefix) for prefix in prefixes) - 1))


class PackedPrompt:
    """One prompt and its titles as one row: the prefix, then every title's continuation.

    ``segments`` is 0 on the prefix and ``t + 1`` on title ``t``; each scored token is read
    at ``read_at`` (the position that predicts it) and counts towards ``title_of``.
    """

    def __init__(self, prefix, continuations, first_scored):
        lengths = np.array([len(c) for c in continuations])
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        in_title = np.arange(lengths.sum()) - starts
        self.ids = np.concatenate([prefix, np.concatenate(continuations)])
        self.positions = np.concatenate([np.arange(len(prefix)), len(prefix) + in_title])
        title = np.repeat(np.arange(len(continuations)), lengths)
        self.segments = np.concatenate([np.zeros(len(prefix), dtype=np.int64), title + 1])
        scored = in_title >= np.asarray(first_scored)[title]
        # A title's first token is predicted by the prefix's last position, the others by the title's previous token.
        predictor = np.where(in_title == 0, len(prefix) - 1, len(prefix) + np.arange(lengths.sum()) - 1)
        self.read_at, self.targets, self.title_of = predictor[scored], self.ids[len(prefix) :][scored], title[scored]
        self.n_titles = len(continuations)
        self.prefix_length = len(prefix)

    def __len__(self):
        return len(self.ids)


class TitleScorer:
    """Log-probabilities of each listed candidate's title as the answer to a prompt.

    ``tokens_per_forward`` bounds the padded size (rows x longest row, the shared opening left
    out) of one packed forward pass. On a 2-core CPU (benchmarks/bench_eval.py, uni9 prompts of
    ~320 tokens after the opening) 1024 and 2048 were equally fast, 4096 5% and 8192 25% slower;
    2048 keeps several prompts per forward when prompts are longer (image text), and the attention
    mask grows with the square of the row length.
    """

    def __init__(self, model, tokenizer, tokens_per_forward=2048):
        self.model = model
        self.tokenizer = tokenizer
        self.cache_keyword = cache_keyword(model)
        self.tokens_per_forward = tokens_per_forward

    def answer_ids(self, prompt, titles):
        """``(shared prefix ids, continuation ids per title, first scored position per title)``.

        ``prompt + title + </answer>`` is tokenized whole, as SFT tokenizes prompt and
        completion: a title whose first characters merge with the ``>`` that ends the prompt
        is scored on the tokens it trains on, from the first token that differs from the
        prompt's own. The prefix shared by every title is run once.
        """
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        encoded = self.tokenizer([prompt + title + ANSWER_CLOSE for title in titles], add_special_tokens=False)["input_ids"]
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
        """Log-softmax of the titles' likelihoods: one prompt's distribution over its candidates."""
        return torch.log_softmax(self.title_log_likelihoods(prompt, titles), dim=-1)

    @torch.no_grad()
    def log_probs(self, prompts, candidate_titles):
        """For each prompt, its distribution over its own candidates' titles (log-probabilities)."""
        # A title listed twice is scored once, so the twins tie exactly as they do on the reference path.
        distinct = [{title: k for k, title in enumerate(dict.fromkeys(titles))} for titles in candidate_titles]
        packed = [PackedPrompt(*self.answer_ids(prompt, list(titles))) for prompt, titles in zip(prompts, distinct)]
        opening, opening_cache = self._shared_opening(packed)
        results = [None] * len(packed)
        # Longest first, so each forward pads its rows to a similar length.
        order = sorted(range(len(packed)), key=lambda i: -len(packed[i]))
        start = 0
        while start < len(order):
            rows = max(1, self.tokens_per_forward // (len(packed[order[start]]) - opening))
            batch = order[start : start + rows]
            rows_scores = self._packed_title_log_likelihoods([packed[i] for i in batch], opening, opening_cache)
            for index, scores in zip(batch, rows_scores):
                listed = scores[[distinct[index][title] for title in candidate_titles[index]]]
                results[index] = torch.log_softmax(listed, dim=-1).float().cpu()
            start += rows
        return results

    def _shared_opening(self, packed):
        """``(length, key/value cache)`` of the opening every packed prompt shares (:func:`shared_opening_length`), run once.

        ``(0, None)`` when the prompts share nothing or the model returns no cache.
        """
        prefixes = [row.ids[: row.prefix_length] for row in packed]
        length = shared_opening_length(prefixes)
        if length < 1:
            return 0, None
        layers = prompt_key_values(self.model, torch.tensor(prefixes[0][None, :length], device=self.model.device))
        return (0, None) if layers is None else (length, layers)

    def _packed_title_log_likelihoods(self, rows, opening=0, opening_cache=None):
        """Summed title log-probabilities of each packed row's titles, from one forward pass.

        The rows' first ``opening`` tokens are not run: every row reads their keys and values from
        ``opening_cache`` (per layer, ``(keys, values)`` of one row), which all rows share.
        """
        device = self.model.device
        n_rows, width = len(rows), max(len(row) for row in rows) - opening
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = np.full((n_rows, width), pad, dtype=np.int64)
        positions = np.zeros((n_rows, width), dtype=np.int64)
        segments = np.full((n_rows, width), -1, dtype=np.int64)
        for r, row in enumerate(rows):
            run = len(row) - opening
            ids[r, :run], positions[r, :run], segments[r, :run] = row.ids[opening:], row.positions[opening:], row.segments[opening:]
        segments = torch.from_numpy(segments).to(device)
        # A token sees the earlier tokens of its own segment, and a title also sees the prefix; every
        # token sees the shared opening. Without an opening, padding sees only padding: a query that
        # saw nothing would give NaN, which the values would spread.
        same = segments[:, :, None] == segments[:, None, :]
        prefix_for_title = (segments[:, :, None] > 0) & (segments[:, None, :] == 0)
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        dtype = self.model.dtype
        mask = torch.zeros((n_rows, 1, width, opening + width), dtype=dtype, device=device)
        mask[..., opening:].masked_fill_(~((same | prefix_for_title) & causal)[:, None], torch.finfo(dtype).min)
        cache = {}
        if opening:
            layers = [(keys.expand(n_rows, -1, -1, -1), values.expand(n_rows, -1, -1, -1)) for keys, values in opening_cache]
            cache = {self.cache_keyword: key_value_cache(self.model, layers)}

        row_of = np.repeat(np.arange(n_rows), [len(row.read_at) for row in rows])
        read_at = np.concatenate([row.read_at for row in rows]) - opening
        read = torch.zeros((n_rows, width), dtype=torch.bool, device=device)
        read[torch.from_numpy(row_of), torch.from_numpy(read_at)] = True
        # The model returns logits only at the read positions, in row-major order.
        logit_row = (read.flatten().cumsum(0) - 1).view(n_rows, width)[torch.from_numpy(row_of), torch.from_numpy(read_at)]
        logits = self.model(
            input_ids=torch.from_numpy(ids).to(device),
            attention_mask=mask,
            position_ids=torch.from_numpy(positions).to(device),
            use_cache=False,
            logits_to_keep=read,
            **cache,
        ).logits.float()
        targets = torch.from_numpy(np.concatenate([row.targets for row in rows])).to(device)
        # The float32 log-softmax of the one-prompt path, whose rounding (up to ~1e-5 a token over a
        # 49k vocabulary) is part of the scores both paths must agree on; summed in float64 so the
        # order of the sum does not matter.
        token_log_probs = torch.log_softmax(logits, dim=-1)[logit_row, targets].double()
        title_offsets = np.cumsum([0] + [row.n_titles for row in rows])
        title_of = torch.from_numpy(np.concatenate([offset + row.title_of for offset, row in zip(title_offsets, rows)]))
        sums = torch.zeros(title_offsets[-1], dtype=token_log_probs.dtype, device=device).index_add_(0, title_of.to(device), token_log_probs)
        return sums.split([row.n_titles for row in rows])
