r"""
MLLMRecR1
################################################

Reference:
    MLLMRec-R1: Incentivizing Reasoning Capability in Large Language Models for
    Multimodal Sequential Recommendation. arXiv:2603.06243.

NOTE:
    The paper lets the LLM generate the next item. To be evaluated by RecBole's own
    protocols, this model *scores* RecBole's candidates instead: the prompt lists the
    user's recent items (title, metadata and the textualized image) and the candidates,
    and the score of a candidate is the LLM's probability of answering with its title
    right after ``<answer>``, the answer SFT and GRPO train it to write. Candidates are
    listed in a seeded order that ignores which one is the positive, more than
    ``candidates_per_prompt`` candidates are split over several prompts, and full
    ranking reranks the top ``rerank_topk`` items of the sequential model.

    ``eval_scoring: generative`` evaluates as the official code does instead: one greedy reply
    per user lists the ``max(topk)`` best candidates, listed candidates rank in the reply's
    order and all others below them in the listing order (an unparseable reply ranks the
    positive at the random floor, not first); there are no log-probabilities to fuse.

    Collaborative grounding (LLaRA, Llama4Rec): a trained RecBole sequential model
    (``sequential_model``, SASRec by default; :mod:`recbole_mllmr1.sequential_model`) gives
    every listed item a hybrid token after its title, embedded by a trainable projector from
    its frozen item embedding (``item_tokens``, :mod:`recbole_mllmr1.item_tokens`), and its
    log-softmax over the candidates is mixed into the final score with weight
    ``fusion_weight`` (chosen on validation by the trainer when ``auto``).

    What others use is the public surface below: the prompt builders, ``item_title`` /
    ``item_entry`` / ``item_token``, ``render_prompt``, ``title_log_probs``, ``reasoning``,
    ``candidate_log_probs``, the ``language_model`` and ``tokenizer`` that TRL trains, and
    the setters: ``use_language_model`` (the one way to swap in a LoRA-wrapped or trained
    LLM), ``set_reasoning``, ``set_generative_eval`` and ``set_fusion_weight``; the
    trainer logs ``pop_generation_tally`` after each generative evaluation. Item image texts
    and the trained sequential model are prepared before the model is built
    (:func:`recbole_mllmr1.quick_start.prepare_run`) and read from the dataset.
"""
from collections import Counter
from contextlib import contextmanager
from logging import getLogger

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType, set_color

from recbole_mllmr1.item_text import ItemTexts
from recbole_mllmr1.item_tokens import install_item_tokens, item_token_text
from recbole_mllmr1.listing import listing_order, sample_negatives
from recbole_mllmr1.llm import load_causal_lm, load_tokenizer
from recbole_mllmr1.prompts import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    build_messages,
    build_ranking_messages,
    generation_prompt,
    item_lines,
    parse_ranked_list,
)
from recbole_mllmr1.scoring import TitleScorer, render_prompt


def strict_rank_scores(log_probs, order):
    """Scores that RecBole ranks exactly like ``log_probs``, with ties broken by listing order.

    RecBole's sampled evaluation scatters each row's score to its item id before its top-k,
    which then breaks ties by item id: equal scores would be ranked by an id that says
    nothing about the user. Here tied candidates keep the seeded listing order instead.
    Returned as ``n - rank`` (exact in float32, which RecBole's evaluator casts to).
    """
    n = len(log_probs)
    listing_rank = np.empty(n, dtype=np.int64)
    listing_rank[order] = np.arange(n)
    ranked = np.lexsort((listing_rank, -np.asarray(log_probs, dtype=np.float64)))
    scores = np.empty(n, dtype=np.float64)
    scores[ranked] = n - np.arange(n)
    return scores


class MLLMRecR1(SequentialRecommender):
    """An LLM recommender over textualized items, scored through the chat template."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()
        self.max_history = config["max_history"]
        self.candidates_per_prompt = config["candidates_per_prompt"]
        self.rerank_topk = config["rerank_topk"]
        self.listing_seed = config["seed"]
        self.use_image_text = config["use_image_text"]
        # False: the CoT teacher's item_entry shows the image text, the recommender's prompt_entry not (the official recipe).
        self.recommender_image_text = config["recommender_image_text"]

        if self.use_image_text and not hasattr(dataset, "item_image_texts"):
            raise ValueError(
                "use_image_text needs the item image texts on the dataset: build MLLMRecR1 through "
                "recbole_mllmr1.quick_start.prepare_run, which textualizes item images first."
            )
        self._item_texts = ItemTexts(
            dataset,
            title_field=config["title_field"],
            meta_fields=config["item_meta_fields"] or [],
            image_texts=dataset.item_image_texts if self.use_image_text else None,
        )
        self.llm_path = config["llm_path"]
        self._tokenizer = load_tokenizer(config["llm_path"])
        self._llm = load_causal_lm(config["llm_path"], config["device"], config["llm_dtype"])

        # The sequential model: retrieval, fusion and item tokens read it; it is never trained here.
        if (config["sequential_model"] or config["retriever_checkpoint"]) and not hasattr(dataset, "sequential_model"):
            raise ValueError(
                "sequential_model needs the trained sequential model on the dataset: build MLLMRecR1 through "
                "recbole_mllmr1.quick_start.prepare_run, which trains or loads it first."
            )
        self.sequential_model = getattr(dataset, "sequential_model", None)
        self.item_tokens = bool(config["item_tokens"])
        if self.item_tokens:
            item_embeddings = self.sequential_model.item_embedding.weight.detach().float().cpu()
            install_item_tokens(self._llm, self._tokenizer, item_embeddings, config["projector_hidden_size"])
        self.fusion_weight = 0.0 if config["fusion_weight"] == "auto" else float(config["fusion_weight"])
        self._remembered_llm_scores = None
        self._scorer = TitleScorer(self._llm, self._tokenizer)
        self.generation_batch_size = config["llm_batch_size"]
        # After GRPO the model reasons before it answers, and is scored after its reasoning (see set_reasoning).
        self._reason_before_answer = False
        self.max_reasoning_tokens = config["max_reasoning_tokens"]
        self._example_logged = False
        self._reply_logged = False  # generative evaluation: one example reply per test (pop_generation_tally)
        # Generative evaluation: one greedy reply per user ranks the max(topk) best candidates.
        self.generative_eval = config["eval_scoring"] == "generative"
        self.generative_topk = max(config["topk"])
        self._generation_tally = Counter()

        # Full-ranking retrieval without a sequential model: training-interaction counts (a buffer, so it follows .to(device)).
        counts = torch.bincount(dataset.inter_feat[self.ITEM_ID], minlength=self.n_items).float()
        self.register_buffer("popularity", counts, persistent=False)

    def __str__(self):
        """RecBole's model line, without the LLM's layer dump, and its one trainable-parameter count:
        what the trainer trains, the LoRA adapter (and the item-token projector's copy) once it is
        attached, else 0 (a zero-shot run trains nothing)."""
        total = sum(parameter.numel() for parameter in self._llm.parameters())
        with_adapter = hasattr(self._llm, "peft_config")  # PEFT froze everything but the adapter
        trainable = sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad) if with_adapter else 0
        sequential = f"{type(self.sequential_model).__name__} (frozen)" if self.sequential_model is not None else "none"
        return (
            f"{type(self).__name__}(LLM: {self.llm_path}, {total:,} parameters; sequential model: {sequential}; "
            f"item tokens: {'on' if self.item_tokens else 'off'})\n" + set_color("Trainable parameters", "blue") + f": {trainable}"
        )

    # ---- the LLM: what TRL trains, and the one way to swap it ------------------------------
    @property
    def language_model(self):
        """The causal LM that scores and reasons (LoRA-wrapped once training attaches an adapter)."""
        return self._llm

    @property
    def tokenizer(self):
        """The LLM's tokenizer (left padding), TRL's ``processing_class``."""
        return self._tokenizer

    def use_language_model(self, llm):
        """Score and reason with ``llm`` from now on: the base LLM wrapped in a LoRA adapter, or a trained one."""
        self._llm = llm
        self._scorer = TitleScorer(llm, self._tokenizer)

    def set_reasoning(self, enabled):
        """Whether scoring first lets the model reason (greedy, up to ``max_reasoning_tokens``)."""
        self._reason_before_answer = bool(enabled)

    def set_generative_eval(self, enabled):
        """Whether scoring ranks by one generated list (``eval_scoring: generative``) or by each
        candidate's title likelihood; the trainer validates by likelihood in both modes."""
        self.generative_eval = bool(enabled)

    def set_fusion_weight(self, weight):
        """The sequential model's share ``w`` of the final score: ``(1 - w) x LLM + w x sequential``."""
        if weight and self.sequential_model is None:
            raise ValueError(f"fusion weight {weight} needs a sequential model, and this MLLMRecR1 has none.")
        if self.generative_eval and 0 < weight < 1:
            raise ValueError(
                f"fusion weight {weight}: eval_scoring 'generative' ranks by a generated list, which has no "
                "log-probabilities to mix with the sequential model's; use 0 (the LLM alone) or 1 (the sequential model alone)."
            )
        self.fusion_weight = float(weight)

    def pop_generation_tally(self):
        """Counts of generative evaluation's replies since the last call (``replies``, ``listed none``,
        ``listed fewer than asked``), then reset; empty in likelihood scoring. The next test logs an
        example reply again: each stage's adapter answers differently."""
        tally, self._generation_tally = dict(self._generation_tally), Counter()
        self._reply_logged = False
        return tally

    @contextmanager
    def remembering_llm_scores(self, remembered=None):
        """Inside, the LLM's scores of a (user, history, candidates) request are computed once and
        reused: the trainer tries every fusion weight on the same validation candidates.

        Yields the dict of remembered scores; pass one back in (``remembered``) to reuse the scores
        of an earlier pass with the same adapter.
        """
        self._remembered_llm_scores = {} if remembered is None else remembered
        try:
            yield self._remembered_llm_scores
        finally:
            self._remembered_llm_scores = None

    # ---- items ---------------------------------------------------------------------------
    def item_title(self, item_id):
        """The item's title as prompts list it and answers name it."""
        return self._item_texts.title(item_id)

    def item_token(self, item_id):
        """The item's external token (its id in the dataset's files)."""
        return self._item_texts.item_tokens[item_id]

    def item_entry(self, item_id):
        """``(external item token, text)`` as prompts show the item."""
        return self._item_texts.entry(item_id, self.use_image_text)

    # ---- prompts -----------------------------------------------------------------------
    def history(self, item_seq, item_seq_len):
        """Internal ids of the user's last ``max_history`` items, oldest first."""
        length = int(item_seq_len)
        return item_seq[max(0, length - self.max_history) : length].tolist()

    def prompt_entry(self, item_id):
        """``(external item token, text)`` as the model's own prompts list the item: with its hybrid
        item token after the title when ``item_tokens`` is on, and the image text only with
        ``recommender_image_text`` (teachers get :meth:`item_entry`)."""
        image_text = self.use_image_text and self.recommender_image_text
        return self._item_texts.entry(item_id, image_text, item_token_text(item_id) if self.item_tokens else "")

    def messages(self, history_ids, candidate_ids):
        """Chat messages listing the history and the candidates (in the given order)."""
        return build_messages([self.prompt_entry(i) for i in history_ids], [self.prompt_entry(i) for i in candidate_ids])

    def render_prompt(self, messages, assistant_prefix=""):
        """Chat-template text of ``messages`` with the assistant turn opened at ``assistant_prefix`` and ``<answer>``."""
        return render_prompt(self._tokenizer, messages, assistant_prefix)

    def prompt(self, history_ids, candidate_ids, assistant_prefix=""):
        """The scoring prompt: chat-template text ending in ``<answer>``."""
        return self.render_prompt(self.messages(history_ids, candidate_ids), assistant_prefix)

    # ---- scoring -------------------------------------------------------------------------
    def title_log_probs(self, prompts, candidate_titles):
        """Per prompt, the log-probabilities of its candidates' titles after it, renormalised among them."""
        return self._scorer.log_probs(prompts, candidate_titles)

    def candidate_log_probs(self, requests):
        """Log-probabilities for many users' candidate lists, in batched forward passes.

        ``requests`` holds ``(user_id, history_ids, candidate_ids)``. Each list is put in its
        seeded listing order and split into prompts of at most ``candidates_per_prompt``;
        each prompt's candidates are renormalised among themselves. Returns, per request,
        ``(log_probs in the given candidate order, listing order)``.
        """
        return self._remembered("likelihood", requests, self._llm_log_probs)

    def _remembered(self, scoring, requests, compute):
        """``compute(requests)``, reusing the remembered results of ``scoring`` inside :meth:`remembering_llm_scores`."""
        memo = self._remembered_llm_scores
        if memo is None:
            return compute(requests)
        keys = [(scoring, user, tuple(history), tuple(candidates)) for user, history, candidates in requests]
        missing = list({key: None for key in keys if key not in memo})
        memo.update(zip(missing, compute([key[1:] for key in missing])))
        return [memo[key] for key in keys]

    def _llm_log_probs(self, requests):
        plans, messages, titles = [], [], []
        for user_id, history_ids, candidate_ids in requests:
            order = listing_order(self.listing_seed, user_id, candidate_ids)
            chunks = [order[i : i + self.candidates_per_prompt] for i in range(0, len(order), self.candidates_per_prompt)]
            messages += [self.messages(history_ids, [candidate_ids[j] for j in chunk]) for chunk in chunks]
            titles += [[self.item_title(candidate_ids[j]) for j in chunk] for chunk in chunks]
            plans.append((order, chunks))
        prefixes = self.reasoning(messages) if self._reason_before_answer else [""] * len(messages)
        prompts = [self.render_prompt(m, prefix) for m, prefix in zip(messages, prefixes)]
        if prompts and not self._example_logged:
            self.logger.info(f"Example scoring prompt (a candidate's score is the probability of its title after it):\n{prompts[0]}")
            self._example_logged = True
        chunk_log_probs = iter(self.title_log_probs(prompts, titles))
        results = []
        for order, chunks in plans:
            log_probs = np.empty(len(order), dtype=np.float64)
            for chunk in chunks:
                log_probs[chunk] = next(chunk_log_probs).double().numpy()
            results.append((log_probs, order))
        return results

    def _generated_ranking_scores(self, requests):
        """Per request, ``(scores in the given candidate order, listing order)`` from one greedy reply
        that ranks the ``generative_topk`` best candidates (all of them when fewer are listed).

        All of a request's candidates are listed in one prompt, in the seeded listing order. The
        r-th candidate the reply ranks scores ``-r``; every other candidate scores ``-n``, below
        them all, and :func:`strict_rank_scores` orders those by the listing order: a reply that
        ranks nothing leaves the positive at the random floor.
        """
        plans, texts, budgets = [], [], []
        for user_id, history_ids, candidate_ids in requests:
            order = listing_order(self.listing_seed, user_id, candidate_ids)
            listed = [candidate_ids[j] for j in order]
            count = min(self.generative_topk, len(listed))
            messages = build_ranking_messages([self.prompt_entry(i) for i in history_ids], [self.prompt_entry(i) for i in listed], count)
            texts.append(generation_prompt(self._tokenizer, messages))
            budgets.append(self._ranking_token_budget(listed, count))
            plans.append((order, listed, count))
        replies = self._greedy_replies(texts, budgets, ANSWER_CLOSE)
        if texts and not self._reply_logged:
            self.logger.info(f"Example ranking prompt (generative evaluation) and its reply:\n{texts[0]}{replies[0]}")
            self._reply_logged = True
        results = []
        for (order, listed, count), reply in zip(plans, replies):
            ranked = parse_ranked_list(reply, [self.item_token(i) for i in listed], [self.item_title(i) for i in listed], count)
            self._generation_tally.update(
                {"replies": 1, "listed none": int(not ranked), "listed fewer than asked": int(0 < len(ranked) < count)}
            )
            scores = np.full(len(order), -float(len(order)))
            scores[order[ranked]] = -np.arange(len(ranked), dtype=np.float64)
            results.append((scores, order))
        return results

    def _ranking_token_budget(self, listed, count):
        """New tokens a ranked reply may take: the ``count`` longest candidates as numbered ``[id] title``
        lines inside the answer tags, and ``max_reasoning_tokens`` before them when the model reasons."""
        lines = [f"{count}. " + item_lines([(self.item_token(i), self.item_title(i))]) + "\n" for i in listed]
        lengths = sorted((len(ids) for ids in self._tokenizer(lines, add_special_tokens=False)["input_ids"]), reverse=True)
        tags = len(self._tokenizer(ANSWER_OPEN + "\n" + ANSWER_CLOSE, add_special_tokens=False)["input_ids"])
        return sum(lengths[:count]) + tags + (self.max_reasoning_tokens if self._reason_before_answer else 0)

    @torch.no_grad()
    def _greedy_replies(self, texts, max_new_tokens, stop_string):
        """The model's greedy continuation of each text, up to its ``max_new_tokens`` or ``stop_string``, in batches."""
        replies = []
        for start in range(0, len(texts), self.generation_batch_size):
            end = start + self.generation_batch_size
            batch = self._tokenizer(texts[start:end], add_special_tokens=False, padding=True, return_tensors="pt").to(self._llm.device)
            output = self._llm.generate(
                **batch,
                max_new_tokens=max(max_new_tokens[start:end]),
                do_sample=False,
                stop_strings=[stop_string],
                tokenizer=self._tokenizer,
                pad_token_id=self._tokenizer.pad_token_id,
            )
            replies += self._tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return replies

    def reasoning(self, messages_list):
        """The model's own greedy reply up to ``<answer>``, for each prompt (empty when it answers at once)."""
        texts = [generation_prompt(self._tokenizer, m) for m in messages_list]
        replies = self._greedy_replies(texts, [self.max_reasoning_tokens] * len(texts), ANSWER_OPEN)
        return [reply.split(ANSWER_OPEN)[0] for reply in replies]

    # ---- RecBole interface -------------------------------------------------------------
    def forward(self, item_seq, item_seq_len):
        raise NotImplementedError("MLLMRecR1 scores candidates through predict / full_sort_predict.")

    def calculate_loss(self, interaction):
        """Cross-entropy of the target's title among itself and sampled negatives' titles."""
        item_seq = interaction[self.ITEM_SEQ].cpu()
        item_seq_len = interaction[self.ITEM_SEQ_LEN].cpu()
        users = interaction[self.USER_ID].cpu().tolist()
        targets = interaction[self.POS_ITEM_ID].cpu().tolist()
        generator = torch.Generator().manual_seed(self.listing_seed)
        logits, target_positions = [], []
        for row, (user, target) in enumerate(zip(users, targets)):
            negatives = sample_negatives(
                lambda: int(torch.randint(1, self.n_items, (1,), generator=generator)), {target}, self.candidates_per_prompt - 1
            )
            candidates = [target] + negatives
            order = listing_order(self.listing_seed, user, candidates)
            listed = [candidates[j] for j in order]
            prompt = self.prompt(self.history(item_seq[row], item_seq_len[row]), listed)
            logits.append(self._scorer.title_log_likelihoods(prompt, [self.item_title(i) for i in listed]))
            target_positions.append(int(np.flatnonzero(order == 0)[0]))
        logits = torch.stack(logits)
        return torch.nn.functional.cross_entropy(logits, torch.tensor(target_positions, device=logits.device))

    def fused_log_probs(self, requests, sequential_log_probs):
        """Per request, ``(scores in the given candidate order, listing order)``: the LLM's
        log-probabilities mixed with the sequential model's by ``fusion_weight`` (with
        ``eval_scoring: generative``, the generated ranking's scores, at weight 0 or 1 only).

        A candidate listed twice (RecBole's sampler can repeat a negative) is shown to the LLM
        once and its copies get its score. At weight 1 the LLM is not asked; at 0, nor is the
        sequential model (``sequential_log_probs`` is then never read).
        """
        unique = [list(dict.fromkeys(candidates)) for _, _, candidates in requests]
        unique_requests = [(r[0], r[1], u) for r, u in zip(requests, unique)]
        if self.fusion_weight == 1:
            llm = [np.zeros(len(u)) for u in unique]
        elif self.generative_eval:
            llm = [scores for scores, _ in self._remembered("generative", unique_requests, self._generated_ranking_scores)]
        else:
            llm = [log_probs for log_probs, _ in self.candidate_log_probs(unique_requests)]
        results = []
        for row, ((user, _, candidates), listed, llm_row) in enumerate(zip(requests, unique, llm)):
            scores = llm_row if self.fusion_weight == 0 else (
                (1 - self.fusion_weight) * llm_row + self.fusion_weight * sequential_log_probs(row, listed)
            )
            by_item = dict(zip(listed, scores))
            results.append((np.array([by_item[item] for item in candidates]), listing_order(self.listing_seed, user, candidates)))
        return results

    def _sequential_scores(self, interaction):
        """``[B, n_items]`` scores of the sequential model for each row's history (CPU, float32).

        Histories longer than the sequential model's ``max_seq_length`` keep their most recent items.
        """
        item_seq, item_seq_len = interaction[self.ITEM_SEQ].cpu(), interaction[self.ITEM_SEQ_LEN].cpu()
        max_length = getattr(self.sequential_model, "max_seq_length", item_seq.shape[1])
        if item_seq.shape[1] > max_length:
            starts = (item_seq_len - max_length).clamp(min=0)
            positions = starts[:, None] + torch.arange(max_length)
            item_seq = torch.gather(item_seq, 1, positions.clamp(max=item_seq.shape[1] - 1))
            item_seq_len = item_seq_len.clamp(max=max_length)
            item_seq = item_seq.masked_fill(torch.arange(max_length)[None, :] >= item_seq_len[:, None], 0)
        device = next(self.sequential_model.parameters()).device
        features = Interaction({self.ITEM_SEQ: item_seq.to(device), self.ITEM_SEQ_LEN: item_seq_len.to(device)})
        with torch.no_grad():
            return self.sequential_model.full_sort_predict(features).view(len(item_seq), -1).float().cpu()

    @staticmethod
    def _candidate_log_softmax(scores):
        """A function ``(row, candidates) -> log-softmax of row's scores over those candidates``."""

        def log_softmax(row, candidates):
            return torch.log_softmax(scores[row, list(candidates)].double(), dim=0).numpy()

        return log_softmax

    def predict(self, interaction):
        """One score per (user, candidate) row of RecBole's sampled evaluation.

        Rows of one user are contiguous; each row's ``item_id`` is its candidate. Nothing
        else about a row (its position, its label) is read, so the positive is not known.
        """
        users = interaction[self.USER_ID].cpu()
        items = interaction[self.ITEM_ID].cpu()
        item_seq = interaction[self.ITEM_SEQ].cpu()
        item_seq_len = interaction[self.ITEM_SEQ_LEN].cpu()
        scores = np.empty(len(items), dtype=np.float64)
        boundaries = torch.nonzero(users[1:] != users[:-1]).flatten().add(1).tolist()
        spans = list(zip([0] + boundaries, boundaries + [len(items)]))
        requests = [
            (int(users[start]), self.history(item_seq[start], item_seq_len[start]), items[start:end].tolist())
            for start, end in spans
        ]
        sequential = None
        if self.fusion_weight > 0:
            first_rows = torch.tensor([start for start, _ in spans])
            sequential = self._candidate_log_softmax(
                self._sequential_scores(
                    Interaction({self.ITEM_SEQ: item_seq[first_rows], self.ITEM_SEQ_LEN: item_seq_len[first_rows]})
                )
            )
        for (start, end), (fused, order) in zip(spans, self.fused_log_probs(requests, sequential)):
            scores[start:end] = strict_rank_scores(fused, order)
        return torch.from_numpy(scores).float().to(interaction[self.ITEM_ID].device)

    def retrieval_scores(self, interaction):
        """``[B, n_items]`` retrieval scores (the sequential model's, else popularity); padding and the user's own history get -inf."""
        users = interaction[self.USER_ID]
        if self.sequential_model is None:
            retrieval = self.popularity.cpu().repeat(len(users), 1)
        else:
            retrieval = self._sequential_scores(interaction)
        retrieval[:, 0] = -np.inf
        retrieval.scatter_(1, interaction[self.ITEM_SEQ].cpu(), -np.inf)
        return retrieval

    def retrieve(self, interaction):
        """The retriever's top ``rerank_topk`` item ids per user: the candidates the LLM reranks."""
        return torch.topk(self.retrieval_scores(interaction), self.rerank_topk, dim=1).indices.tolist()

    def full_sort_predict(self, interaction):
        """Scores over all items: the LLM reranks the retriever's top ``rerank_topk`` (fused with
        the sequential model's scores by ``fusion_weight``; with generative scoring, those it does
        not list follow in the listing order).

        Items outside the top-k keep the retriever's order below them. The interaction's
        ``item_id`` (the target) is never read.
        """
        users = interaction[self.USER_ID].cpu()
        item_seq = interaction[self.ITEM_SEQ].cpu()
        item_seq_len = interaction[self.ITEM_SEQ_LEN].cpu()
        retrieval = self.retrieval_scores(interaction)
        retrieval_order = torch.argsort(retrieval, dim=1, descending=True, stable=True)
        scores = torch.empty_like(retrieval)
        rank_scores = torch.arange(self.n_items, 0, -1, dtype=scores.dtype)
        scores.scatter_(1, retrieval_order, rank_scores.repeat(len(users), 1))
        tops = retrieval_order[:, : self.rerank_topk].tolist()
        requests = [(int(users[row]), self.history(item_seq[row], item_seq_len[row]), top) for row, top in enumerate(tops)]
        sequential = self._candidate_log_softmax(retrieval) if self.sequential_model is not None else None
        for row, (fused, order) in enumerate(self.fused_log_probs(requests, sequential)):
            reranked = torch.from_numpy(self.n_items + strict_rank_scores(fused, order)).to(scores.dtype)
            scores[row, tops[row]] = reranked
        return scores.to(interaction[self.ITEM_SEQ].device)
