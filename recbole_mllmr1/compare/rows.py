"""The table's rows: the model each one runs, its overrides, and the training stage it reports."""
import re
from dataclasses import dataclass, field

LLM_MODEL = "MLLMRecR1"
# The sequential model MLLMRecR1 reads (item tokens, fusion, the full-ranking candidates): its
# row's trained checkpoint is every MLLMRecR1 row's ``retriever_checkpoint``.
RETRIEVER_MODEL = "SASRec"
DEFAULT_MODELS = ("Pop", "BPR", "GRU4Rec", "Caser", "NARM", "SASRec", "BERT4Rec", LLM_MODEL)


@dataclass(frozen=True)
class Row:
    """One line of the table.

    ``overrides``: the config keys that make this line differ from its model's defaults.
    ``stage``: report the test result of this training stage's best adapter (MLLMRecR1's
    trainer tests each stage) instead of the run's overall pick.
    """

    name: str
    model: str
    overrides: dict = field(default_factory=dict)
    stage: str = None

    @property
    def slug(self):
        """The row's name for ``--models`` (e.g. ``mllmrecr1-sft-grpo``)."""
        return slugify(self.name)


# MLLMRecR1 as the paper trains it: SFT on mixed-grained CoT + answer-only samples, then GRPO;
# grounded by default (hybrid item tokens, and fusion with the sequential model's scores).
_TRAINED = {"stages": ["sft", "grpo"], "sft_data": "mixed"}
_TEXT_ONLY = {"item_tokens": False}
_ZERO_SHOT = {"stages": [], "item_tokens": False, "fusion_weight": 0}
# A trained run tests each stage fused, by the LLM alone and by the sequential model alone
# (trainer.LLM_ALONE): the ablation rows are stages of two runs, on the same candidates.
_LLM_ALONE = " (LLM alone)"

# The table's rows, in order; ``--models`` picks rows by model or by row slug. A training
# stage or an ablation is one more line.
ROWS = (
    Row("Pop", "Pop"),
    Row("BPR", "BPR"),
    Row("GRU4Rec", "GRU4Rec"),
    Row("Caser", "Caser"),
    Row("NARM", "NARM"),
    Row("SASRec", "SASRec"),
    Row("BERT4Rec", "BERT4Rec"),
    Row("MLLMRecR1 (zero-shot)", LLM_MODEL, _ZERO_SHOT),
    Row("MLLMRecR1 (zero-shot, no image text)", LLM_MODEL, {**_ZERO_SHOT, "use_image_text": False}),
    Row("MLLMRecR1 (text only, SFT+GRPO)", LLM_MODEL, {**_TRAINED, **_TEXT_ONLY}, stage="grpo" + _LLM_ALONE),
    Row("MLLMRecR1 (fusion, SFT+GRPO)", LLM_MODEL, {**_TRAINED, **_TEXT_ONLY}, stage="grpo"),
    Row("MLLMRecR1 (hybrid, SFT+GRPO)", LLM_MODEL, _TRAINED, stage="grpo" + _LLM_ALONE),
    Row("MLLMRecR1 (hybrid+fusion, SFT)", LLM_MODEL, _TRAINED, stage="sft"),
    Row("MLLMRecR1 (hybrid+fusion, SFT+GRPO)", LLM_MODEL, _TRAINED, stage="grpo"),
    Row("MLLMRecR1 (hybrid+fusion, SFT+GRPO, no image text)", LLM_MODEL, {**_TRAINED, "use_image_text": False}, stage="grpo"),
    Row("MLLMRecR1 (hybrid+fusion, SFT+GRPO, no CoT samples)", LLM_MODEL, {**_TRAINED, "sft_data": "plain"}, stage="grpo"),
)


def slugify(name):
    """``name`` in lower case with every run of other characters turned into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def select_rows(models, mode):
    """The rows named in ``models``, in that order: a model name picks all its rows, a row slug
    (e.g. ``mllmrecr1-zero-shot``) one row, and any other name a row of that model on its defaults.

    MLLMRecR1 reads SASRec (its item embeddings, its scores, in full mode its top-K), so SASRec's
    row is added first when missing.
    """
    rows = []
    for name in models:
        matches = [row for row in ROWS if row.model == name] or [row for row in ROWS if row.slug == slugify(name)]
        rows.extend(row for row in matches or [Row(name, name)] if row not in rows)
    if any(row.model == LLM_MODEL for row in rows) and not any(row.model == RETRIEVER_MODEL for row in rows):
        print(f"Adding {RETRIEVER_MODEL}: the sequential model {LLM_MODEL} reads (item tokens, fusion, full-ranking candidates).", flush=True)
        rows.insert(0, next(row for row in ROWS if row.model == RETRIEVER_MODEL))
    return rows
