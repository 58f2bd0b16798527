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
    ranking reranks the top ``rerank_topk`` items of a retriever (popularity, or a
    trained RecBole model given by ``retriever_checkpoint``).

    What others use is the public surface below: the prompt builders, ``item_title`` /
    ``item_entry`` / ``item_token``, ``render_prompt``, ``title_log_probs``, ``reasoning``,
    ``candidate_log_probs``, the ``language_model`` and ``tokenizer`` that TRL trains, and
    two setters: ``use_language_model`` (the one way to swap in a LoRA-wrapped or trained
    LLM) and ``set_reasoning``. Item image texts are computed before the model is built
    (:func:`recbole_mllmr1.hooks.attach_image_texts`) and read from the dataset.
"""
from logging import getLogger

import numpy as np
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_mllmr1.item_text import ItemTexts
from recbole_mllmr1.listing import listing_order, sample_negatives
from recbole_mllmr1.llm import load_causal_lm, load_tokenizer
from recbole_mllmr1.prompts import ANSWER_OPEN, build_messages
from recbole_mllmr1.scoring import TitleScorer, render_prompt
from recbole_mllmr1.utils import get_model


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
        self._tokenizer = load_tokenizer(config["llm_path"])
        self._llm = load_causal_lm(config["llm_path"], config["device"], config["llm_dtype"])
        self._scorer = TitleScorer(self._llm, self._tokenizer)
        self.generation_batch_size = config["llm_batch_size"]
        # After GRPO the model reasons before it answers, and is scored after its reasoning (see set_reasoning).
        self._reason_before_answer = False
        self.max_reasoning_tokens = config["max_reasoning_tokens"]
        self._example_logged = False

        # Full-ranking retriever. Popularity: training-interaction counts, a buffer so it follows .to(device).
        counts = torch.bincount(dataset.inter_feat[self.ITEM_ID], minlength=self.n_items).float()
        self.register_buffer("popularity", counts, persistent=False)
        self.retriever = load_retriever(config["retriever_checkpoint"], dataset) if config["retriever_checkpoint"] else None

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

    def messages(self, history_ids, candidate_ids):
        """Chat messages listing the history and the candidates (in the given order)."""
        return build_messages([self.item_entry(i) for i in history_ids], [self.item_entry(i) for i in candidate_ids])

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

    @torch.no_grad()
    def reasoning(self, messages_list):
        """The model's own greedy reply up to ``<answer>``, for each prompt (empty when it answers at once)."""
        texts = [self._tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages_list]
        replies = []
        for start in range(0, len(texts), self.generation_batch_size):
            batch = self._tokenizer(
                texts[start : start + self.generation_batch_size], add_special_tokens=False, padding=True, return_tensors="pt"
            ).to(self._llm.device)
            output = self._llm.generate(
                **batch,
                max_new_tokens=self.max_reasoning_tokens,
                do_sample=False,
                stop_strings=[ANSWER_OPEN],
                tokenizer=self._tokenizer,
                pad_token_id=self._tokenizer.pad_token_id,
            )
            replies += self._tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
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
        for (start, end), (log_probs, order) in zip(spans, self.candidate_log_probs(requests)):
            scores[start:end] = strict_rank_scores(log_probs, order)
        return torch.from_numpy(scores).float().to(interaction[self.ITEM_ID].device)

    def retrieval_scores(self, interaction):
        """``[B, n_items]`` retriever scores; padding and the user's own history get -inf."""
        users = interaction[self.USER_ID]
        if self.retriever is None:
            retrieval = self.popularity.cpu().repeat(len(users), 1)
        else:
            with torch.no_grad():
                retrieval = self.retriever.full_sort_predict(interaction).view(len(users), -1).float().cpu()
        retrieval[:, 0] = -np.inf
        retrieval.scatter_(1, interaction[self.ITEM_SEQ].cpu(), -np.inf)
        return retrieval

    def retrieve(self, interaction):
        """The retriever's top ``rerank_topk`` item ids per user: the candidates the LLM reranks."""
        return torch.topk(self.retrieval_scores(interaction), self.rerank_topk, dim=1).indices.tolist()

    def full_sort_predict(self, interaction):
        """Scores over all items: the LLM reranks the retriever's top ``rerank_topk``.

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
        for row, (log_probs, order) in enumerate(self.candidate_log_probs(requests)):
            reranked = torch.from_numpy(self.n_items + strict_rank_scores(log_probs, order)).to(scores.dtype)
            scores[row, tops[row]] = reranked
        return scores.to(interaction[self.ITEM_SEQ].device)


def load_retriever(checkpoint_file, dataset):
    """A trained RecBole model (e.g. SASRec) from a checkpoint that ``run_recbole`` saved, in eval mode."""
    try:
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)  # our own run's file
    except FileNotFoundError:
        raise FileNotFoundError(
            f"retriever_checkpoint [{checkpoint_file}] does not exist: train the retriever with run_recbole "
            "(it saves under checkpoint_dir) and pass that file, or set retriever_checkpoint to ~ for popularity."
        ) from None
    retriever_config = checkpoint["config"]
    retriever_config["device"] = torch.device("cpu")
    retriever = get_model(retriever_config["model"])(retriever_config, dataset)
    retriever.load_state_dict(checkpoint["state_dict"])
    retriever.load_other_parameter(checkpoint.get("other_parameter"))
    return retriever.eval()
