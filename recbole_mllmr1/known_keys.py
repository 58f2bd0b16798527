"""The config keys a run may set, so that a misspelled one stops the run instead of being ignored.

RecBole accepts any key and silently ignores the ones nothing reads: ``--stage="[]"`` for
``stages`` trained every stage. The known keys are every key of RecBole's own yaml files
and every key its code reads (``config["..."]``; some, e.g. ``use_filter``, have no yaml
default), the same for this plugin (its yaml, the baselines' yaml, the keys the dataset
converters write), and ``allow_unknown_keys``, the opt-out for keys of the user's own models.
"""
import difflib
import functools
import glob
import importlib.util
import os
import re

import yaml

from recbole_mllmr1.dataset_converters.atomic import DATASET_YAML_KEYS

OPT_OUT = "allow_unknown_keys"

# config["key"], config.get("key", ...), and the same on RecBole's config dicts (config_dict,
# final_config_dict: e.g. nproc, port for distributed runs) in source code.
_READ_KEY = re.compile(r"(?:config|config_dict)(?:\[\s*|\.get\(\s*)[\"']([A-Za-z_]\w*)[\"']")
# Keys the plugin's entry points take from the command line themselves; RecBole's Config reads
# every --key=value of the process too, so these reach it as well.
ENTRY_POINT_KEYS = ("config_files",)


class UnknownKeyError(ValueError):
    """A config key that neither RecBole nor the plugin reads."""


def _package_folder(package):
    return os.path.dirname(importlib.util.find_spec(package).origin)


def _yaml_keys(folder, skip=()):
    keys = set()
    for path in glob.glob(os.path.join(folder, "**", "*.yaml"), recursive=True):
        if os.path.relpath(path, folder).split(os.sep)[0] in skip:
            continue
        with open(path, encoding="utf-8") as file:
            content = yaml.safe_load(file)
        if isinstance(content, dict):
            keys.update(content)
    return keys


def _keys_read_by_code(folder):
    keys = set()
    for path in glob.glob(os.path.join(folder, "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as file:
            keys.update(_READ_KEY.findall(file.read()))
    return keys


@functools.lru_cache(maxsize=1)
def known_keys():
    recbole, plugin = _package_folder("recbole"), _package_folder("recbole_mllmr1")
    return frozenset(
        _yaml_keys(os.path.join(recbole, "properties"))
        | _keys_read_by_code(recbole)
        # properties/accelerate holds `accelerate launch` settings, not RecBole keys.
        | _yaml_keys(_package_folder("recbole_mllmr1.properties"), skip=("accelerate",))
        | _yaml_keys(_package_folder("recbole_mllmr1.baselines"))
        | _keys_read_by_code(plugin)
        | set(DATASET_YAML_KEYS)
        | set(ENTRY_POINT_KEYS)
        | {OPT_OUT}
    )


def check_known_keys(keys, source):
    """Raise :class:`UnknownKeyError` for the first of ``keys`` (set in ``source``) nobody reads."""
    known = known_keys()
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else "."
            raise UnknownKeyError(
                f"unknown key [{key}] in {source}{hint} (keys of your own model: set {OPT_OUT}=True)"
            )
