"""The table's rows: the model each one runs, its overrides, and the training stage it reports."""
import re
from dataclasses import dataclass, field

LLM_MODEL = "MLLMRecR1"
RETRIEVER_MODEL = "SASRec"  # the full-ranking retriever whose top-K MLLMRecR1 reranks
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


# MLLMRecR1 as the paper trains it: SFT on mixed-grained CoT + answer-only samples, then GRPO.
_TRAINED = {"stages": ["sft", "grpo"], "sft_data": "mixed"}

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
    Row("MLLMRecR1 (zero-shot)", LLM_MODEL, {"stages": []}),
    Row("MLLMRecR1 (zero-shot, no image text)", LLM_MODEL, {"stages": [], "use_image_text": False}),
    Row("MLLMRecR1 (SFT)", LLM_MODEL, _TRAINED, stage="sft"),
    Row("MLLMRecR1 (SFT+GRPO)", LLM_MODEL, _TRAINED, stage="grpo"),
    Row("MLLMRecR1 (SFT+GRPO, no image text)", LLM_MODEL, {**_TRAINED, "use_image_text": False}, stage="grpo"),
    Row("MLLMRecR1 (SFT+GRPO, no CoT samples)", LLM_MODEL, {**_TRAINED, "sft_data": "plain"}, stage="grpo"),
)


def slugify(name):
    """``name`` in lower case with every run of other characters turned into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def select_rows(models, mode):
    """The rows named in ``models``, in that order: a model name picks all its rows, a row slug
    (e.g. ``mllmrecr1-zero-shot``) one row, and any other name a row of that model on its defaults.

    In full mode MLLMRecR1 needs the retriever, so SASRec's row is added first when missing.
    """
    rows = []
    for name in models:
        matches = [row for row in ROWS if row.model == name] or [row for row in ROWS if row.slug == slugify(name)]
        rows.extend(row for row in matches or [Row(name, name)] if row not in rows)
    if mode == "full" and any(row.model == LLM_MODEL for row in rows) and not any(row.model == RETRIEVER_MODEL for row in rows):
        print(f"Full ranking: adding {RETRIEVER_MODEL}, the retriever whose top-K {LLM_MODEL} reranks.", flush=True)
        rows.insert(0, next(row for row in ROWS if row.model == RETRIEVER_MODEL))
    return rows
