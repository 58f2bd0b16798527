"""RecBole yaml -> PEFT LoraConfig, TRL SFTConfig and GRPOConfig: the one place training settings are mapped.

Every value TRL would otherwise default is set explicitly: TRL's defaults change between
versions (1.x: GRPO beta=0, loss_type='dapo', learning_rate=1e-6, num_generations=8).
"""
import torch
from peft import LoraConfig

from recbole_mllmr1.optional_packages import require_vllm


def lora_config(config, num_layers):
    """LoRA on ``lora_target_modules`` of every decoder layer, or of the last ``lora_last_layers``."""
    return _lora(config, num_layers, config["lora_r"], config["lora_alpha"], config["lora_target_modules"], config["item_tokens"])


def grpo_lora_config(config, num_layers):
    """GRPO's own adapter with ``grpo_lora: fresh``: ``grpo_lora_r``, ``grpo_lora_alpha`` and
    ``grpo_lora_target_modules`` (each ``~`` = the SFT adapter's key), in the layers ``lora_last_layers`` says.

    It holds no item-token projector: PEFT lets only one of the active adapters own a module, so the
    projector stays the SFT adapter's, as SFT trained it.
    """
    return _lora(
        config, num_layers, _grpo_or_sft(config, "lora_r"), _grpo_or_sft(config, "lora_alpha"),
        _grpo_or_sft(config, "lora_target_modules"), with_projector=False,
    )


def _grpo_or_sft(config, key):
    value = config[f"grpo_{key}"]
    return config[key] if value is None else value


def _lora(config, num_layers, r, alpha, target_modules, with_projector):
    last = config["lora_last_layers"]
    if last is not None and not 1 <= last <= num_layers:
        raise ValueError(f"lora_last_layers [{last}] must be between 1 and the LLM's {num_layers} layers, or ~ for all.")
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=config["lora_dropout"],
        target_modules=list(target_modules),
        layers_to_transform=None if last is None else list(range(num_layers - last, num_layers)),
        # The hybrid item tokens' projector trains with the adapter and is saved in it (PEFT keeps a
        # trainable copy of a module named here; a model without item tokens has none to match).
        modules_to_save=["item_projector"] if with_projector else None,
        task_type="CAUSAL_LM",
    )


def _length(config, stage):
    """``<stage>_steps`` optimizer steps, or ``<stage>_epochs`` passes over the stage's data, which TRL turns
    into steps from its dataloader (as the official code's ``num_train_epochs``): for GRPO one pass gives
    every prompt its ``grpo_num_generations`` rollouts once."""
    epochs = config[f"{stage}_epochs"]
    return {"max_steps": config[f"{stage}_steps"]} if epochs is None else {"max_steps": -1, "num_train_epochs": float(epochs)}


def _common(config, output_dir, stage):
    on_cuda = torch.device(config["device"]).type == "cuda"
    return dict(
        output_dir=output_dir,
        **_length(config, stage),
        learning_rate=config[f"{stage}_learning_rate"],
        per_device_train_batch_size=config[f"{stage}_batch_size"],
        gradient_accumulation_steps=config[f"{stage}_gradient_accumulation_steps"],
        lr_scheduler_type=config["lr_scheduler_type"],
        warmup_steps=0,
        seed=config["seed"],
        data_seed=config["seed"],
        logging_steps=1,
        save_strategy="steps",
        save_steps=config["eval_step"],
        save_total_limit=1,
        report_to=[],
        disable_tqdm=not config["show_progress"],
        # bf16 matmul is ~300x slower than fp32 on CPU: half precision only on a GPU.
        bf16=on_cuda and config["llm_dtype"] in ("auto", "bfloat16"),
        use_cpu=not on_cuda,
        gradient_checkpointing=on_cuda and config["gradient_checkpointing"],
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def sft_config(config, output_dir):
    from trl import SFTConfig

    return SFTConfig(
        **_common(config, output_dir, "sft"),
        max_length=config["sft_max_length"],
        completion_only_loss=config["sft_completion_only_loss"],
        packing=False,
    )


def check_grpo_batch(config, num_processes=1):
    """TRL needs whole prompt groups in a batch: fail before training, with the fix, when not."""
    global_batch = config["grpo_batch_size"] * config["grpo_gradient_accumulation_steps"] * num_processes
    if global_batch % config["grpo_num_generations"]:
        raise ValueError(
            f"grpo_batch_size ({config['grpo_batch_size']}) x grpo_gradient_accumulation_steps "
            f"({config['grpo_gradient_accumulation_steps']}) x processes ({num_processes}) = {global_batch} completions "
            f"per step is not divisible by grpo_num_generations ({config['grpo_num_generations']}). "
            "Each prompt's group of generations must fit in one step: change one of them."
        )


def grpo_config(config, output_dir, num_processes=1):
    from trl import GRPOConfig

    check_grpo_batch(config, num_processes)
    use_vllm = bool(config["use_vllm"])
    if use_vllm:
        require_vllm("use_vllm=True", "set use_vllm=False for transformers generation")
    return GRPOConfig(
        **_common(config, output_dir, "grpo"),
        num_generations=config["grpo_num_generations"],
        max_completion_length=config["grpo_max_completion_length"],
        temperature=config["grpo_temperature"],
        top_p=config["grpo_top_p"],
        beta=config["grpo_beta"],
        loss_type=config["grpo_loss_type"],
        scale_rewards=config["grpo_scale_rewards"],
        num_iterations=1,
        epsilon=0.2,
        use_vllm=use_vllm,
        vllm_mode=config["vllm_mode"],
        log_completions=False,
    )
