"""The CoT pipeline: pseudo-CoT -> structured rationale -> measured confidence -> mixed-grained SFT file.

``build_mixed_grained_dataset`` writes two JSON-lines files under ``<cot_cache_dir>/<dataset>/``:

- ``mixed_grained-<fingerprint>.jsonl``: the training file, trainable rows only: every plain
  sample (``kind: plain``) and the injected reliable CoT samples (``kind: cot``, the rationale
  in the completion; with ``cot_placement: input`` a chosen share of them replace their plain
  row instead, the rationale in the prompt and the answer alone in the completion), with the
  columns ``prompt``, ``completion`` (TRL conversational prompt-completion), ``kind``, ``user``,
  ``target``, ``target_title``, ``confidence``, ``gain``, ``rank``, ``kept``, ``reason``;
- ``mixed_grained-<fingerprint>.provenance.jsonl``: one row per sample sent to the teacher,
  kept or dropped, with why, the teacher's replies and the confidence numbers.

The fingerprint hashes every input of the file, so a changed config gets a new file while
the caches (``teacher.jsonl``, ``scores.jsonl``) keep every reply and score already made:
a changed ratio or threshold only re-mixes, a changed teacher or prompt regenerates only
what it affects, and a crashed build resumes where it stopped.
"""
import os
from dataclasses import asdict, dataclass
from logging import getLogger

import numpy as np

from recbole_mllmr1.cot import confidence, teacher_prompts
from recbole_mllmr1.cot.cache import JsonlCache, content_key, read_jsonl, write_jsonl_atomically
from recbole_mllmr1.cot.mixing import COT_SUBSET_STREAM, SFT_REFERENCE_STREAM, choose_share, mix
from recbole_mllmr1.cot.teachers import GenerationSettings, make_teacher
from recbole_mllmr1.llm import cache_root
from recbole_mllmr1.training_samples import answer_record, draw_training_samples, reference_record

# Bump when the parser, the row layout or the mixing rule changes: it renames the output file.
FILE_FORMAT_VERSION = 2


@dataclass(frozen=True)
class CoTSettings:
    """The config keys of the CoT build (see properties/model/MLLMRecR1.yaml)."""

    teacher: str
    teacher_model: str  # the served model name, for an http(s) teacher
    num_samples: int  # training samples sent to the teacher; None = all plain samples
    ratio: float
    min_gain: float  # None = no gain threshold
    min_prob: float  # None = no probability threshold
    max_new_tokens: int
    temperature: float
    refine_teacher: str  # cot_refine_teacher: None = the pseudo-CoT teacher refines too
    refine_teacher_model: str
    refine_max_new_tokens: int  # cot_refine_max_new_tokens, or cot_max_new_tokens when it is ~
    refine_temperature: float  # cot_refine_temperature, or cot_temperature when it is ~
    batch_size: int
    cache_dir: str
    seed: int
    plain_samples: int  # train_samples: the plain rows; None = the whole training split
    candidates: int  # train_candidates
    one_per_user: bool  # train_sample_per_user
    refine_sees_target: bool  # the refinement prompt shows the training sample's target
    placement: str  # 'output' (the completion reasons) or 'input' (a share of prompts show the rationale)
    input_share: float  # cot_input_share_sft: with placement 'input', that share of the reliable samples

    @classmethod
    def from_config(cls, config):
        """The CoT keys of a config, as :func:`recbole_mllmr1.settings.check_settings` accepted them.

        Numbers are cast to their field's type, so the fingerprint does not depend on whether
        a float was written as ``1`` or ``1.0``.
        """

        def optional(kind, key):
            return None if config[key] is None else kind(config[key])

        def or_else(kind, key, fallback_key):
            return kind(config[fallback_key] if config[key] is None else config[key])

        return cls(
            teacher=config["cot_teacher"],
            teacher_model=config["cot_teacher_model"],
            num_samples=optional(int, "cot_num_samples"),
            ratio=float(config["cot_ratio"]),
            min_gain=optional(float, "cot_min_gain"),
            min_prob=optional(float, "cot_min_prob"),
            max_new_tokens=int(config["cot_max_new_tokens"]),
            temperature=float(config["cot_temperature"]),
            refine_teacher=config["cot_refine_teacher"],
            refine_teacher_model=config["cot_refine_teacher_model"],
            refine_max_new_tokens=or_else(int, "cot_refine_max_new_tokens", "cot_max_new_tokens"),
            refine_temperature=or_else(float, "cot_refine_temperature", "cot_temperature"),
            batch_size=int(config["cot_batch_size"]),
            cache_dir=os.path.expanduser(str(config["cot_cache_dir"] or os.path.join(cache_root(), "cot"))),
            seed=int(config["seed"]),
            plain_samples=optional(int, "train_samples"),
            candidates=int(config["train_candidates"]),
            one_per_user=bool(config["train_sample_per_user"]),
            refine_sees_target=bool(config["cot_refine_sees_target"]),
            placement=str(config["cot_placement"]),
            input_share=float(config["cot_input_share_sft"]),
        )

    @property
    def pseudo_cot_generation(self):
        return GenerationSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed)

    @property
    def refinement_generation(self):
        return GenerationSettings(max_new_tokens=self.refine_max_new_tokens, temperature=self.refine_temperature, seed=self.seed)


def provenance_path(training_path):
    """The provenance file beside a training file."""
    return training_path[: -len(".jsonl")] + ".provenance.jsonl"


def _prompt_templates():
    """The teacher prompts with placeholders: a changed wording changes the file fingerprint."""
    return {
        "pseudo_cot": teacher_prompts.pseudo_cot_messages([("ITEM", "TEXT")]),
        "refinement": teacher_prompts.refinement_messages("NOTES"),
        "refinement_with_target": teacher_prompts.refinement_messages("NOTES", ("ITEM", "TEXT")),
        "scaffold": teacher_prompts.REFINE_SCAFFOLD,
        "criteria": [teacher_prompts.MIN_CRITERIA, teacher_prompts.MAX_CRITERIA],
    }


def _cot_subset(n_plain, num_samples, seed):
    """Sorted indices of the plain samples that also get a CoT (a seeded subset; all when it asks for more)."""
    if num_samples is None or num_samples >= n_plain:
        return list(range(n_plain))
    rng = np.random.default_rng([seed, COT_SUBSET_STREAM])
    return sorted(int(i) for i in rng.choice(n_plain, size=num_samples, replace=False))


def _teacher_replies(teacher, conversations, generation, cache, stage, scaffold, show_progress):
    keys = [content_key("teacher", teacher.identity, messages, scaffold, generation.as_dict()) for messages in conversations]
    return cache.fill(
        keys,
        conversations,
        lambda batch: teacher.generate(batch, generation, scaffold=scaffold),
        teacher.batch_size,
        desc=f"CoT teacher: {stage}",
        show_progress=show_progress,
        stage=stage,
        teacher=teacher.identity,
    )


def _pseudo_cots(model, teacher, cot_samples, settings, cache, show_progress):
    """a. The teacher's notes on each sample's history alone: no candidate, no target, nothing after it."""
    conversations = [
        teacher_prompts.pseudo_cot_messages([model.item_entry(i) for i in sample.history])
        for sample in cot_samples
    ]
    return _teacher_replies(teacher, conversations, settings.pseudo_cot_generation, cache, "pseudo-CoT", (), show_progress)


def _refine(model, teacher, cot_samples, pseudo_cots, settings, cache, show_progress):
    """b. ``(refinement replies, rationale texts, drop reasons)`` by sample index; nothing is dropped silently.

    With ``refine_sees_target`` the teacher also sees each (training) sample's target.
    """
    to_refine = [i for i, text in enumerate(pseudo_cots) if text.strip()]

    def target_text(sample):
        return model.item_entry(sample.target) if settings.refine_sees_target else None

    conversations = [teacher_prompts.refinement_messages(pseudo_cots[i], target_text(cot_samples[i])) for i in to_refine]
    replies = _teacher_replies(
        teacher, conversations, settings.refinement_generation, cache, "refinement", teacher_prompts.REFINE_SCAFFOLD, show_progress
    )
    refined = dict(zip(to_refine, replies))
    rationales, reasons = {}, {}
    for i in range(len(pseudo_cots)):
        if i not in refined:
            reasons[i] = "dropped: empty pseudo-CoT reply"
            continue
        try:
            rationales[i] = teacher_prompts.parse_rationale(refined[i]).text()
        except teacher_prompts.RationaleParseError as error:
            reasons[i] = f"dropped: unparseable refinement: {error}"
    return refined, rationales, reasons


def _measure(model, cot_samples, rationales, scorer_identity, cache, show_progress):
    """c. The measured :class:`~recbole_mllmr1.cot.confidence.Confidence` of every parsed rationale, by sample index."""
    scored = sorted(rationales)
    prompt_pairs = [confidence.scoring_prompts(model, cot_samples[i], rationales[i]) for i in scored]
    titles = [[model.item_title(item) for item in cot_samples[i].candidates] for i in scored]
    was_training = model.language_model.training
    model.language_model.eval()  # dropout would make the scores noisy
    try:
        log_probs = confidence.cached_log_probs(
            model,
            scorer_identity,
            [prompt for pair in prompt_pairs for prompt in pair],
            [candidates for candidates in titles for _ in range(2)],
            cache,
            show_progress,
        )
    finally:
        model.language_model.train(was_training)
    return {
        i: confidence.measure(log_probs[2 * k], log_probs[2 * k + 1], cot_samples[i].target_index)
        for k, i in enumerate(scored)
    }


def _numbers(measured):
    """The provenance numbers of a :class:`Confidence`, or Nones when the sample was not scored."""
    if measured is None:
        return {"confidence": None, "gain": None, "rank": None, "log_prob": None, "log_prob_without": None}
    return {
        "confidence": measured.probability,
        "gain": measured.gain,
        "rank": measured.rank,
        "log_prob": measured.log_prob,
        "log_prob_without": measured.log_prob_without,
    }


def build_mixed_grained_dataset(config, model, train_dataset, show_progress=True, teacher=None, refine_teacher=None):
    """Build (or find up to date) the mixed-grained SFT file for ``model``'s training split; returns its path.

    ``teacher`` overrides ``cot_teacher`` and ``refine_teacher`` overrides ``cot_refine_teacher`` with
    any object of the teacher interface (:mod:`recbole_mllmr1.cot.teachers`), e.g. one that is already
    loaded. Without a refinement teacher (given or configured), ``teacher`` refines its own notes.
    """
    logger = getLogger()
    settings = CoTSettings.from_config(config)
    device = config["device"] or "cpu"
    teacher = teacher or make_teacher(settings.teacher, device, settings.batch_size, settings.teacher_model)
    if refine_teacher is None:
        refine_teacher = (
            make_teacher(settings.refine_teacher, device, settings.batch_size, settings.refine_teacher_model)
            if settings.refine_teacher
            else teacher
        )
    samples = draw_training_samples(
        model, train_dataset, settings.plain_samples, settings.candidates, settings.seed, one_per_user=settings.one_per_user
    )
    plain_records = [answer_record(model, sample) for sample in samples]
    scorer_identity = confidence.scorer_identity(model)
    fingerprint = content_key(
        FILE_FORMAT_VERSION,
        {key: value for key, value in asdict(settings).items() if key not in ("cache_dir", "batch_size")},
        teacher.identity,
        refine_teacher.identity,
        scorer_identity,
        _prompt_templates(),
        plain_records,
    )
    folder = os.path.join(settings.cache_dir, str(config["dataset"]))
    path = os.path.join(folder, f"mixed_grained-{fingerprint[:16]}.jsonl")
    if os.path.exists(path):
        logger.info(f"Mixed-grained CoT file is up to date: {path}")
        return path

    cot_subset = _cot_subset(len(samples), settings.num_samples, settings.seed)
    cot_samples = [samples[i] for i in cot_subset]
    teacher_cache = JsonlCache(os.path.join(folder, "teacher.jsonl"))
    pseudo_cots = _pseudo_cots(model, teacher, cot_samples, settings, teacher_cache, show_progress)
    refined, rationales, reasons = _refine(model, refine_teacher, cot_samples, pseudo_cots, settings, teacher_cache, show_progress)
    measured = _measure(model, cot_samples, rationales, scorer_identity, JsonlCache(os.path.join(folder, "scores.jsonl")), show_progress)
    reliable = []
    for i in sorted(measured):
        why_not = confidence.drop_reason(measured[i], settings.min_gain, settings.min_prob)
        if why_not:
            reasons[i] = f"dropped: {why_not}"
        else:
            reasons[i] = f"kept: gain {measured[i].gain:+.4f}, probability {measured[i].probability:.4f}"
            reliable.append(i)

    # d. Every plain row, and reliable CoT rows at cot_ratio (or, placed in the input, a share of them in their prompts).
    user_tokens = train_dataset.field2id_token[train_dataset.uid_field]

    def identity(sample):
        return {"user": str(user_tokens[sample.user_id]), "target": model.item_token(sample.target), "target_title": model.item_title(sample.target)}

    def training_row(sample, record, kind, reason, numbers):
        shown = {key: numbers[key] for key in ("confidence", "gain", "rank")}
        return {**record, "kind": kind, **identity(sample), **shown, "kept": True, "reason": reason}

    def cot_row(i, record_of):
        return training_row(cot_samples[i], record_of(model, cot_samples[i], rationales[i]), "cot", reasons[i], _numbers(measured[i]))

    plain_rows = [training_row(s, record, "plain", "plain sample", _numbers(None)) for s, record in zip(samples, plain_records)]
    if settings.placement == "input":
        injected = choose_share(len(reliable), settings.input_share, settings.seed, SFT_REFERENCE_STREAM)
        training_rows = list(plain_rows)
        for j in injected:
            training_rows[cot_subset[reliable[j]]] = cot_row(reliable[j], reference_record)
        placed = f"rationales shown in the prompts of {len(injected)} of {len(plain_rows)} rows (cot_input_share_sft {settings.input_share})"
    else:
        training_rows, injected = mix(plain_rows, [cot_row(i, answer_record) for i in reliable], settings.ratio, settings.seed)
        placed = f"{len(injected)} CoT rows injected next to {len(plain_rows)} plain rows (cot_ratio {settings.ratio})"
    injected_samples = {reliable[j] for j in injected}
    provenance = [
        {
            **identity(sample),
            "history": [model.item_token(item) for item in sample.history],
            "pseudo_cot": pseudo_cots[i],
            "refinement": refined.get(i),
            "rationale": rationales.get(i),
            **_numbers(measured.get(i)),
            "kept": i in reliable,
            "injected": i in injected_samples,
            "reason": reasons[i],
        }
        for i, sample in enumerate(cot_samples)
    ]
    # The training file last: its existence means both files are complete.
    write_jsonl_atomically(provenance_path(path), provenance)
    write_jsonl_atomically(path, training_rows)
    stats = cot_statistics(provenance)
    logger.info(
        f"CoT: {stats['samples']} samples sent to the teacher, {stats['unparseable']} unparseable, "
        f"{stats['kept']} kept by the confidence filter ({stats['kept_share']:.1%}), mean gain {stats['mean_gain']:+.4f}; "
        f"{placed}. File: {path}"
    )
    return path


def rationales_of(training_path, model, train_dataset, samples):
    """Per sample, the reliable rationale a build (``training_path``) made for that training interaction, else None."""
    user_tokens = train_dataset.field2id_token[train_dataset.uid_field]
    kept = {
        (row["user"], row["target"], tuple(row["history"])): row["rationale"]
        for row in read_jsonl(provenance_path(training_path))
        if row["kept"]
    }
    return [
        kept.get((str(user_tokens[s.user_id]), model.item_token(s.target), tuple(model.item_token(i) for i in s.history)))
        for s in samples
    ]


def cot_statistics(provenance):
    """Counts and means over provenance rows: what a researcher checks first about the CoT data."""
    gains = [row["gain"] for row in provenance if row["gain"] is not None]
    kept = sum(row["kept"] for row in provenance)
    return {
        "samples": len(provenance),
        "unparseable": sum(row["reason"].startswith("dropped: unparseable") for row in provenance),
        "empty": sum(row["reason"].startswith("dropped: empty") for row in provenance),
        "scored": len(gains),
        "kept": kept,
        "kept_share": kept / len(provenance) if provenance else 0.0,
        "injected": sum(row["injected"] for row in provenance),
        "mean_gain": float(np.mean(gains)) if gains else float("nan"),
        "mean_gain_kept": float(np.mean([row["gain"] for row in provenance if row["kept"]])) if kept else float("nan"),
        "mean_confidence": float(np.mean([row["confidence"] for row in provenance if row["confidence"] is not None])) if gains else float("nan"),
    }
