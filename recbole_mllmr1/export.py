"""``recbole-mllmr1 export``: a trained run as a plain Hugging Face checkpoint, for vLLM and for
users without this plugin.

The run's best LoRA adapter is merged into the LLM (from a ``grpo_lora: fresh`` GRPO stage,
the SFT adapter and GRPO's own on top of it). With hybrid item tokens, the projected item
embeddings become extra rows of an untied, resized input embedding
(:func:`recbole_mllmr1.item_tokens.export_hybrid_checkpoint`): a prompt built with the same item
tokens gives the same logits over the original vocabulary. ``grounding.json`` in the folder says
what the checkpoint cannot hold: the fusion weight the run chose and the sequential model it fuses.
"""
import json
import os

from recbole_mllmr1.json_files import write_json_atomically
from recbole_mllmr1.recommend import check_run_folder, load_trained_model


def export_run(checkpoint, out, dataset=None, data_path=None):
    """Write the merged model of the run folder ``checkpoint`` to ``out``; returns ``out``."""
    from recbole_mllmr1.item_tokens import export_hybrid_checkpoint, projector_of
    from recbole_mllmr1.trainer import FUSION_WEIGHTS

    model, _ = load_trained_model(checkpoint, dataset, data_path)
    llm = model.language_model.merge_and_unload()
    if projector_of(llm) is not None:
        export_hybrid_checkpoint(llm, model.tokenizer, out)
    else:
        llm.save_pretrained(out)
        model.tokenizer.save_pretrained(out)
    weights_file = os.path.join(checkpoint, FUSION_WEIGHTS)
    fusion_weights = json.load(open(weights_file)) if os.path.isfile(weights_file) else {}
    write_json_atomically(
        os.path.join(out, "grounding.json"),
        {
            "item_tokens": projector_of(llm) is not None,
            "item_token_format": "<|item_ID|> after each listed title (ID: RecBole's internal item id)",
            "fusion_weights": fusion_weights,
            "sequential_model": None if model.sequential_model is None else type(model.sequential_model).__name__,
        },
        indent=1,
    )
    return out


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="run folder written by run_recbole (under checkpoint_dir)")
    parser.add_argument("--out", required=True, help="folder for the Hugging Face checkpoint")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the run's)")
    parser.add_argument("--data-path", default=None, help="folder holding the dataset (default: the run's)")


def run(args):
    check_run_folder(args.checkpoint)  # a wrong folder fails before the dataset and the LLM load
    print(f"Exported to {export_run(args.checkpoint, args.out, args.dataset, args.data_path)}")
    return 0
