"""The run's LoRA adapters on disk and in the model, and GRPO's own adapter (``grpo_lora: fresh``).

By default one adapter, PEFT's ``default``, serves every stage: untrained it is the identity (the
zero-shot model), SFT trains it and GRPO continues it. With ``grpo_lora: fresh`` (the official
code's choice) GRPO trains a new adapter, ``grpo``, stacked on SFT's best adapter, which stays
applied and frozen: the model is base + SFT + GRPO, what a fresh LoRA on the merged SFT model
computes, without merging, so that the zero-shot and SFT adapters can still be loaded into the
same model and tested afterwards. A saved adapter folder holds ``default`` in PEFT's layout
(``PeftModel.from_pretrained`` loads it) and, from a fresh GRPO stage, ``grpo/`` beside it.
"""
import os

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from recbole_mllmr1.training import settings

SFT_ADAPTER = "default"  # PEFT's name for a model's first adapter
GRPO_ADAPTER = "grpo"
ADAPTER_FILE = "adapter_model.safetensors"


def load_adapters(peft_model, folder):
    """Load the adapter(s) saved in ``folder`` into ``peft_model`` and make them the active ones.

    The folder's own adapter goes into the SFT adapter (same shape: the run's settings); a GRPO
    adapter saved beside it is stacked on top, otherwise the SFT adapter is active alone.
    """
    set_peft_model_state_dict(peft_model, load_file(os.path.join(folder, ADAPTER_FILE)))
    activate_saved_grpo_adapter(peft_model, folder)


def activate_saved_grpo_adapter(peft_model, folder):
    """Stack the GRPO adapter saved in ``<folder>/grpo`` on the SFT adapter (PEFT creates it from
    its saved config the first time); without one, only the SFT adapter stays active."""
    grpo_folder = os.path.join(folder, GRPO_ADAPTER)
    if os.path.isfile(os.path.join(grpo_folder, ADAPTER_FILE)):
        peft_model.load_adapter(grpo_folder, GRPO_ADAPTER)
        stack_grpo_adapter(peft_model)
    elif GRPO_ADAPTER in peft_model.peft_config:
        peft_model.set_adapter(SFT_ADAPTER)


def add_fresh_grpo_adapter(config, peft_model):
    """Add GRPO's own adapter (:func:`recbole_mllmr1.training.settings.grpo_lora_config`) and
    stack it on the SFT adapter; returns ``(trainable, total)`` parameters.

    The adapter starts as the identity (PEFT zeroes ``lora_B``); its ``lora_A`` is drawn with
    ``seed``, so that a run resumed after SFT starts GRPO from the same adapter.
    """
    lora = settings.grpo_lora_config(config, peft_model.get_base_model().config.num_hidden_layers)
    # PEFT draws the adapter's weights on the CPU, then moves them to the layer's device.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config["seed"])
        peft_model.add_adapter(GRPO_ADAPTER, lora)
    stack_grpo_adapter(peft_model)
    return peft_model.get_nb_trainable_parameters()


def stack_grpo_adapter(peft_model):
    """Activate the GRPO adapter on top of the SFT adapter, and let only the GRPO adapter train.

    GRPO's is PEFT's active adapter by name and the first of the stack: TRL (its KL reference pass)
    and Transformers (resuming a checkpoint) take it as the adapter in training when they activate
    one adapter by name, which
    :class:`~recbole_mllmr1.training.stacked_grpo.StackedGRPOTrainer` follows with this stack again.
    """
    peft_model.set_adapter(GRPO_ADAPTER)
    peft_model.base_model.set_adapter([GRPO_ADAPTER, SFT_ADAPTER])
    for name, parameter in peft_model.named_parameters():
        if f".{SFT_ADAPTER}." in name:  # the SFT adapter's LoRA weights and item-token projector
            parameter.requires_grad_(False)
