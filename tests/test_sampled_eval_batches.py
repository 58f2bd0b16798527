"""A user's candidates are scored in one ``predict`` call, whatever ``eval_batch_size`` says."""
from recbole_mllmr1.config import Config
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.trainer import MLLMRecR1Trainer
from recbole.utils import init_seed
from tests.conftest import TINY_CONFIG


def _test_result(data_path, llm_dir, eval_batch_size, tmp_path):
    config = Config(
        model="MLLMRecR1",
        dataset="tiny",
        config_dict={**TINY_CONFIG, "data_path": data_path, "llm_path": llm_dir, "eval_batch_size": eval_batch_size,
                     "eval_args": {"mode": "uni19"}, "eval_user_sample": 10, "checkpoint_dir": str(tmp_path)},
    )
    model, _, _, test_data = prepare_run(config)
    trainer = MLLMRecR1Trainer(config, model)
    init_seed(config["seed"], config["reproducibility"])
    return trainer.evaluate(test_data, load_best_model=False)


def test_uni19_results_do_not_depend_on_eval_batch_size(tiny_data_path, tiny_llm_dir, tmp_path):
    # 20 rows per user: at eval_batch_size 8 RecBole would cut each user's rows into three chunks.
    split = _test_result(tiny_data_path, tiny_llm_dir, 8, tmp_path)
    whole = _test_result(tiny_data_path, tiny_llm_dir, 2000, tmp_path)
    assert split == whole
