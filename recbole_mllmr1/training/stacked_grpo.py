"""The GRPO trainer for ``grpo_lora: fresh``: GRPO's own adapter trained on the frozen SFT adapter.

Its own module because it subclasses TRL's trainer: loading a saved adapter
(:mod:`recbole_mllmr1.training.adapters`, used by testing and ``recommend``) need not import TRL.
"""
from recbole_mllmr1.training.adapters import stack_grpo_adapter
from recbole_mllmr1.training.rollouts import SharedPromptGRPOTrainer

# TRL's copy of the adapter GRPO starts from, its KL reference (grpo_beta > 0).
REFERENCE_ADAPTER = "ref"


class StackedGRPOTrainer(SharedPromptGRPOTrainer):
    """TRL's GRPOTrainer (with shared-prompt rollouts) training the GRPO adapter stacked on the frozen SFT adapter.

    The KL reference (``grpo_beta`` > 0) is the SFT model, base + SFT adapter: TRL copies PEFT's
    ``default`` adapter, here the SFT adapter, into ``ref`` and scores the reference with ``ref``
    alone. Three steps of TRL and Transformers activate one adapter by name; the stack is put back
    after each.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.beta and REFERENCE_ADAPTER not in self.model.peft_config:
            raise RuntimeError(
                "grpo_lora: fresh with grpo_beta > 0 needs TRL's reference adapter (a copy of the SFT adapter); this "
                "TRL scores the KL reference with every adapter disabled, the base model without SFT. Upgrade trl "
                "(huggingface/trl#4723 added it), or set grpo_beta: 0 or grpo_lora: continue."
            )
        # Adding TRL's reference adapter ran PEFT's housekeeping, which lets every active adapter train.
        stack_grpo_adapter(self.model)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        stack_grpo_adapter(self.model)  # Transformers activates the first active adapter alone

    def _generate_and_score_completions(self, *args, **kwargs):
        try:
            return super()._generate_and_score_completions(*args, **kwargs)
        finally:
            stack_grpo_adapter(self.model)  # TRL's reference pass restores one adapter by name
