"""Trainers for the plugin's models, resolved by :func:`recbole_mllmr1.utils.get_trainer`."""
from logging import getLogger

from recbole.trainer import Trainer
from recbole.utils import set_color


class MLLMRecR1Trainer(Trainer):
    """Evaluates MLLMRecR1 zero-shot: the LLM is never trained by RecBole's epoch loop over its batches."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.logger = getLogger()

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self.logger.info(set_color("MLLMRecR1: zero-shot evaluation (no training stages)", "green"))
        if valid_data is None:
            return -1, None
        self.best_valid_score, self.best_valid_result = self._valid_epoch(valid_data, show_progress=show_progress)
        if verbose:
            self.logger.info(set_color("zero-shot valid result", "blue") + f": {self.best_valid_result}")
        return self.best_valid_score, self.best_valid_result

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        # Zero-shot: no checkpoint was written, so there is nothing to reload.
        return super().evaluate(eval_data, load_best_model=False, model_file=None, show_progress=show_progress)
