"""RecBole's Config, extended with the plugin's own properties (as RecBole-GNN does)."""
import os
from importlib import resources

from recbole.config.configurator import Config as RecBoleConfig

from recbole_mllmr1 import compat
from recbole_mllmr1.known_keys import OPT_OUT, check_known_keys
from recbole_mllmr1.optional_packages import require_model_packages
from recbole_mllmr1.utils import get_model

# Every code path that runs RecBole builds a Config, so the compat fixes are applied here, not on
# ``import recbole_mllmr1`` (which must stay free of torch and RecBole for the dataset converters).
compat.apply()

# Dict-valued keys that a partial override should update, not replace: RecBole fills a
# partial ``--eval_args="{'mode':'uni9'}"`` from its *built-in* defaults (random split),
# which would silently drop the leave-one-out split our yaml sets.
_MERGED_DICT_KEYS = ("eval_args",)


def properties_path(*parts):
    """Path of a file shipped in ``properties/`` (``recbole_mllmr1.properties`` once installed)."""
    return os.path.join(str(resources.files("recbole_mllmr1.properties")), *parts)


class Config(RecBoleConfig):
    """Resolves model names through :func:`recbole_mllmr1.utils.get_model` and adds the plugin's yaml.

    Precedence stays RecBole's: RecBole's built-in yaml < the plugin's yaml
    (``properties/model/<Model>.yaml``, ``properties/dataset/<dataset>.yaml``, and a
    ``<dataset>.yaml`` that a dataset converter wrote next to the atomic files) <
    config files < config dict < command line.

    The command line (``--key=value``) is read only when it is this run's own
    (``command_line=True``: ``run_recbole``). RecBole reads the ``sys.argv`` of any process, where
    pytest's ``--durations=10`` or ``compare``'s options would become config keys and be saved
    with a run. Every key of the config files, the config dict and that command line must be a
    key RecBole or the plugin reads (:mod:`recbole_mllmr1.known_keys`): a misspelled key stops
    the run instead of being ignored.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, command_line=False):
        self._command_line_is_config = command_line
        super().__init__(model, dataset, config_file_list, config_dict)

    def _load_config_files(self, file_list):
        # RecBole's own loader, one file at a time: each file's keys are checked under its name.
        self._keys_per_file = {path: super(Config, self)._load_config_files([path]) for path in file_list or []}
        return {key: value for keys in self._keys_per_file.values() for key, value in keys.items()}

    def _load_cmd_line(self):
        return super()._load_cmd_line() if self._command_line_is_config else {}

    def _merge_external_config_dict(self):
        super()._merge_external_config_dict()
        if self.external_config_dict.get(OPT_OUT):
            return
        for path, keys in self._keys_per_file.items():
            check_known_keys(keys, f"config file {path}")
        check_known_keys(self.variable_config_dict, "the config dict")
        check_known_keys(self.cmd_config_dict, "the command line")

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            try:
                model = self.external_config_dict["model"]
            except KeyError:
                raise KeyError(
                    "model need to be specified in at least one of the these ways: "
                    "[model variable, config file, config dict, command line]"
                )
        if isinstance(model, str):
            require_model_packages(model)
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            try:
                dataset = self.external_config_dict["dataset"]
            except KeyError:
                raise KeyError(
                    "dataset need to be specified in at least one of the these ways: "
                    "[dataset variable, config file, config dict, command line]"
                )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        data_path = self.external_config_dict.get("data_path") or "dataset/"
        for file in (
            properties_path("model", f"{model}.yaml"),
            properties_path("dataset", f"{dataset}.yaml"),
            os.path.join(data_path, dataset, f"{dataset}.yaml"),
        ):
            if os.path.isfile(file):
                self._update_internal_config_dict(file)
        # RecBole's sequential models default to loss_type CE, which its own check rejects
        # next to the default train_neg_sample_args; RecBole's docs tell users to pass
        # `--train_neg_sample_args=None` by hand. Make that the default so that
        # `run_recbole --model=SASRec` runs as is. It follows the *effective* loss_type (a
        # user's `loss_type: BPR` needs the sampler) and never overrides a user's own value.
        loss_type = self.external_config_dict.get("loss_type", self.internal_config_dict.get("loss_type"))
        if loss_type == "CE" and "train_neg_sample_args" not in self.external_config_dict:
            self.internal_config_dict["train_neg_sample_args"] = None

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        for key in _MERGED_DICT_KEYS:
            internal, external = self.internal_config_dict.get(key), self.external_config_dict.get(key)
            if isinstance(internal, dict) and isinstance(external, dict):
                final[key] = {**internal, **external}
        return final
