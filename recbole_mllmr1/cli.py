"""``recbole-mllmr1 <command>``: the project's tools besides ``run_recbole``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their command runs, so one command's heavy imports never
slow down another. Nothing here imports a command's package to list it: finding a submodule
imports its parent package. ``--help`` of every command loads neither torch nor RecBole: a command
module imports those inside ``run(args)`` (tests/test_import_weight.py checks it).

This module also holds what both console scripts share and what must stay light: ``--version``,
``run_recbole``'s parser (its ``--help`` and ``--version`` are answered by :func:`run_recbole_main`
without torch or RecBole), and the reporting of user errors (:func:`report_user_error`): one
``error: ...`` line on stderr, the traceback in ``log/errors/``, exit status 2.
"""
import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback

DISTRIBUTION = "recbole-mllmr1"
CONFIGURATION_DOCS = "docs/configuration.md"
EXIT_USER_ERROR = 2
ERROR_LOG_DIR = os.path.join("log", "errors")

COMMANDS = {
    "convert": ("recbole_mllmr1.dataset_converters.cli", "Convert raw Amazon / MovieLens / MicroLens dumps to RecBole atomic files."),
    "textualize": ("recbole_mllmr1.textualize.cli", "Describe item images as short texts, cached per dataset and backend."),
    "build-cot": ("recbole_mllmr1.cot.cli", "Build the confidence-filtered, mixed-grained CoT training file."),
    "compare": ("recbole_mllmr1.compare.cli", "Run MLLMRecR1 and RecBole baselines side by side."),
    "recommend": ("recbole_mllmr1.recommend", "Show a trained model's reasoning and ranking for one user."),
    "export": ("recbole_mllmr1.export", "Write a trained run as a plain Hugging Face checkpoint (LoRA merged, item tokens as embedding rows)."),
}
# Commands that read a RecBole config take its command line as ``run_recbole`` does: any config key
# as ``--key=value`` and yaml files as ``--config_files`` (their dash flags are shorthands for keys).
CONFIG_COMMANDS = ("textualize", "build-cot", "compare", "recommend")
CONFIG_EPILOG = (
    "Any config key can be given as --key=value (RecBole's form, e.g. --data_path=dataset/), and yaml "
    f"files as --config_files=\"a.yaml b.yaml\": the keys are listed in {CONFIGURATION_DOCS}."
)
# The module of ``run_recbole``'s runs, dispatched by name like the commands above: it imports this
# module (the parser, the error reporting), so a static import back would make an import circle.
RUN_RECBOLE_MODULE = "recbole_mllmr1.quick_start"

DEBUG_HELP = (
    "on a mistake, show the full traceback instead of the one-line error "
    f"(the traceback is always written to {ERROR_LOG_DIR}{os.sep})"
)


def version():
    """The installed distribution's version (``importlib.metadata``)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv=None):
    """``recbole-mllmr1 [--version] [--debug] <command> ...``; returns the exit status.

    A user error of a command (the rule: :func:`is_user_error`) prints ``error: <message>`` and
    the path of its traceback file, and returns 2; ``--debug`` (anywhere on the line) re-raises it.
    A command that stops with ``SystemExit("message")`` is reported the same way, without a file.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    parser = argparse.ArgumentParser(prog="recbole-mllmr1", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    chosen = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        takes_config = name in CONFIG_COMMANDS
        # allow_abbrev=False: --data=x must not pass for --data-path=x when every --key=value is a config key.
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, epilog=CONFIG_EPILOG if takes_config else None, allow_abbrev=not takes_config
        )
        if name == chosen:
            importlib.import_module(module).add_arguments(sub)
            if takes_config:
                add_config_files_argument(sub)
    if chosen not in COMMANDS:
        parser.parse_args(argv)  # --help, --version, or argparse's error for an unknown command
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command in CONFIG_COMMANDS:
            args.config_dict = config_arguments(rest, f"recbole-mllmr1 {args.command}")
        elif rest:
            parser.parse_args(argv)  # argparse's own "unrecognized arguments" error
        check_config_files(getattr(args, "config_files", None))
        return importlib.import_module(COMMANDS[args.command][0]).run(args)
    except SystemExit as stop:
        if debug or not isinstance(stop.code, str):
            raise
        print(f"error: {one_line(stop.code)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:
        if report_user_error(error, debug, ["recbole-mllmr1", *argv]):
            return EXIT_USER_ERROR
        raise


def add_config_files_argument(parser):
    """``--config_files``, as ``run_recbole`` takes it."""
    parser.add_argument(
        "--config_files", type=str, default=None,
        help='space-separated yaml config files, later ones win: --config_files="a.yaml b.yaml" (default: none)',
    )


def is_config_argument(arg):
    """Whether RecBole's Config reads ``arg`` as a key: ``--key=value``, with exactly one ``=``."""
    return arg.startswith("--") and len(arg[2:].split("=")) == 2


def config_arguments(args, command):
    """``{key: value}`` of ``args``, the arguments ``command``'s own flags left, which must be config
    keys in RecBole's form ``--key=value``, each key once and known
    (:func:`recbole_mllmr1.known_keys.check_known_keys`). Values stay as typed: RecBole's Config
    converts them. RecBole would ignore ``--eval_user_sample 60`` with a warning and run the full protocol."""
    from recbole_mllmr1.known_keys import OPT_OUT, check_known_keys

    seen = {}
    for arg in args:
        if arg.startswith("--") and arg.count("=") > 1:
            raise UserError(f"argument [{arg}]: RecBole's command line cannot hold a value with '='; set it in a --config_files yaml")
        if not is_config_argument(arg):
            raise UserError(
                f"argument [{arg}] is not of the form --key=value; config keys are given only so "
                f"(e.g. --eval_user_sample=60, no spaces around '='): see {command} --help"
            )
        key, value = arg[2:].split("=")
        if seen.setdefault(key, value) != value:
            raise UserError(f"--{key} is given twice, as {seen[key]!r} and {value!r}")
    if str(seen.get(OPT_OUT, "")).lower() not in ("true", "1"):
        check_known_keys(seen, "the command line")
    return seen


def with_flags(config_dict, flags, command):
    """``config_dict`` (``--key=value`` keys) and the dash flags given (``{key: value}``, None when not
    given) as one dict; a key given both ways is an error naming both."""
    merged = dict(config_dict)
    for key, value in flags.items():
        if value is None:
            continue
        if key in config_dict:
            raise UserError(f"{command}: [{key}] is given twice, as --{key}={config_dict[key]} and by its dash flag ({value!r}); keep one")
        merged[key] = value
    return merged


# ---- run_recbole's command line ----------------------------------------------------------------
# Keys the help lists with their defaults: (key, where the default lives, short meaning).
_COMMON_KEYS = (
    ("data_path", "recbole", "folder of <dataset>/<dataset>.inter (ml-100k: always RecBole's copy)"),
    ("checkpoint_dir", "recbole", "where models and MLLMRecR1's run folders are saved"),
    ("seed", "recbole", "random seed"),
    ("epochs", "recbole", "training epochs of RecBole's models"),
    ("llm_path", "plugin", "MLLMRecR1's LLM: HF model id, local folder or smollm2-135m"),
    ("stages", "plugin", "MLLMRecR1's training stages; [] = zero-shot only"),
    ("train_samples", "plugin", "training interactions per stage; None = all"),
    ("sft_steps", "plugin", "SFT optimizer steps"),
    ("grpo_steps", "plugin", "GRPO optimizer steps"),
    ("eval_user_sample", "plugin", "evaluate a seeded sample of this many users; None = all"),
)


def _key_defaults():
    """``{key: default}`` from RecBole's overall.yaml and MLLMRecR1.yaml, read without importing either package."""
    import importlib.util
    from importlib import resources

    import yaml

    defaults = {}
    recbole = importlib.util.find_spec("recbole")  # a top-level spec: recbole itself is not imported
    sources = {
        "recbole": os.path.join(os.path.dirname(recbole.origin), "properties", "overall.yaml") if recbole else None,
        "plugin": os.path.join(str(resources.files("recbole_mllmr1.properties")), "model", "MLLMRecR1.yaml"),
    }
    for source, path in sources.items():
        try:
            with open(path, encoding="utf-8") as file:
                defaults[source] = yaml.safe_load(file) or {}
        except (OSError, TypeError, yaml.YAMLError):
            defaults[source] = {}
    return defaults


def _format_default(value):
    return "None" if value is None else str(value)  # the command line's spelling of yaml's ~


def run_recbole_epilog():
    defaults = _key_defaults()
    lines = [
        "Every other RecBole or plugin config key is passed as --key=value (underscores, no spaces",
        "around '='), e.g. --eval_user_sample=60 --stages=\"['sft']\"; yaml files given to --config_files",
        f"take the same keys. Every key, its default and what it does: {CONFIGURATION_DOCS}",
        "(RecBole's own keys: https://recbole.io/docs/user_guide/config_settings.html).",
        "A misspelled key, a wrong value, a missing file or dataset stops the run with one line and exit status 2.",
        "",
        "common keys (default):",
    ]
    for key, source, meaning in _COMMON_KEYS:
        if key in defaults[source]:
            lines.append(f"  --{key}={_format_default(defaults[source][key])}".ljust(40) + f" {meaning}")
    lines.append("  --eval_args=\"{'mode':'uni9'}\"".ljust(40) + " evaluation: uni9 (9 sampled negatives), uniN, popN or full")
    lines += [
        "",
        "examples:",
        "  run_recbole --model=MLLMRecR1 --dataset=ml-100k --config_files=properties/quick_start_config/main_cpu.yaml",
        "  run_recbole --model=MLLMRecR1 --dataset=ml-100k --stages=\"[]\" --eval_user_sample=50   # zero-shot only",
        "  run_recbole --model=SASRec --dataset=ml-100k",
    ]
    return "\n".join(lines)


def run_recbole_parser():
    """``run_recbole``'s flags; the config keys (``--key=value``) are left to RecBole's Config."""
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description="Train (if the model trains) and test a plugin or RecBole model with RecBole's protocol.",
        epilog=run_recbole_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # --data=x must not pass for --dataset=x: every unknown --key=value is a config key.
        allow_abbrev=False,
    )
    parser.add_argument("--model", "-m", type=str, default="MLLMRecR1", help="model name, the plugin's or RecBole's (default: %(default)s)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name (default: %(default)s)")
    add_config_files_argument(parser)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return parser


def run_recbole_main(argv=None):
    """``run_recbole`` without torch or RecBole for ``--help`` and ``--version``; a run goes to
    :func:`recbole_mllmr1.quick_start.main` (the console script can point here)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    run_recbole_parser().parse_known_args(argv)  # --help / --version exit here
    return importlib.import_module(RUN_RECBOLE_MODULE).main(argv)


# ---- user errors ------------------------------------------------------------------------------
class UserError(Exception):
    """A mistake in what the user asked for (a flag, a file, a name): reported as one line, exit 2."""


# Plugin and yaml errors that are the user's by definition, wherever they are raised. Looked up
# in sys.modules: a module that was never imported raised none of them (and this module stays light).
_ALWAYS_USER_ERRORS = (
    ("recbole_mllmr1.settings", "SettingsError"),
    ("recbole_mllmr1.known_keys", "UnknownKeyError"),
    ("recbole_mllmr1.optional_packages", "MissingModelPackage"),
    ("yaml", "YAMLError"),
)
# Errors that are the user's when they come from setting the run up (config, dataset, model and
# weights); raised inside training or testing, they are bugs and keep their traceback.
_SETUP_ERRORS = (ValueError, KeyError, OSError)  # OSError: FileNotFoundError, missing weights, no network
_TRAINING_MODULES = ("recbole.trainer", "recbole_mllmr1.trainer", "recbole_mllmr1.training")
_TRAINING_FUNCTIONS = ("fit", "evaluate")


def _always_user_error_classes():
    for module_name, class_name in _ALWAYS_USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, class_name):
            yield getattr(module, class_name)


def raised_in_training(error):
    """Whether ``error``'s traceback passes through a trainer's ``fit`` or ``evaluate``."""
    frame_tb = error.__traceback__
    while frame_tb is not None:
        frame = frame_tb.tb_frame
        if frame.f_code.co_name in _TRAINING_FUNCTIONS and frame.f_globals.get("__name__", "").startswith(_TRAINING_MODULES):
            return True
        frame_tb = frame_tb.tb_next
    return False


def is_user_error(error):
    """The rule of both console scripts.

    A user error is: :class:`UserError`, the plugin's ``SettingsError``, ``UnknownKeyError`` and
    ``MissingModelPackage``, and a yaml error, wherever raised; and a ``ValueError``, ``KeyError``
    or ``OSError`` (``FileNotFoundError``, missing weights, no network) raised while the run is set
    up: building the Config, the dataset, the model. Raised inside training or testing (the traceback
    passes through a trainer's ``fit`` or ``evaluate``), those are bugs, as is every other exception
    type anywhere (``TypeError``, ``RuntimeError``, ...): they keep Python's traceback on the screen.
    """
    if isinstance(error, (UserError, *_always_user_error_classes())):
        return True
    return isinstance(error, _SETUP_ERRORS) and not raised_in_training(error)


def one_line(text):
    return " ".join(str(text).split())


def yaml_error_message(error, path=None):
    """``yaml syntax error in <file>, line L, column C: <problem>`` for a PyYAML error."""
    mark = getattr(error, "problem_mark", None)
    where = path or (mark.name if mark is not None and not str(mark.name).startswith("<") else "a yaml file")
    if mark is not None:
        where += f", line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    return f"yaml syntax error in {where}: " + (f"{context}, " if context else "") + problem


def error_message(error):
    """The one line that describes ``error``."""
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(error, yaml.YAMLError):
        return one_line(yaml_error_message(error))
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        text = error.args[0] if " " in error.args[0].strip() else f"missing key [{error.args[0]}]"
    else:
        text = str(error) or type(error).__name__
    return one_line(text)


def write_traceback(error, argv):
    """Write ``error``'s traceback to ``log/errors/<timestamp>-<pid>.txt`` (a temp folder when the
    working folder is read-only); returns its path, or None when nothing could be written."""
    text = " ".join(argv) + "\n\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))
    name = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{os.getpid()}.txt"
    for folder in (ERROR_LOG_DIR, os.path.join(tempfile.gettempdir(), "recbole_mllmr1", "errors")):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
            return path
        except OSError:
            continue
    return None


def report_user_error(error, debug, argv):
    """Report ``error`` as a user error when it is one (:func:`is_user_error`) and ``debug`` is off.

    Prints ``error: <message>`` and ``traceback: <file> (...)`` on stderr and returns True; returns
    False when the caller must re-raise (a bug, or ``--debug``).
    """
    if debug or not is_user_error(error):
        return False
    path = write_traceback(error, argv)
    print(f"error: {error_message(error)}", file=sys.stderr)
    if path:
        print(f"traceback: {path} (rerun with --debug to see it here)", file=sys.stderr)
    return True


def check_config_files(config_files):
    """The list of ``--config_files`` (a space-separated string, or a list), each one checked:
    it exists and is a yaml mapping. Raises :class:`UserError` naming the file (and the line)."""
    if not config_files:
        return None
    import yaml

    paths = config_files.split() if isinstance(config_files, str) else list(config_files)
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"config file {path} does not exist (--config_files takes space-separated yaml paths, relative to {os.getcwd()})")
        try:
            with open(path, encoding="utf-8") as file:
                node = yaml.compose(file, Loader=yaml.SafeLoader)  # syntax only: RecBole's loader builds the values
        except yaml.YAMLError as error:
            raise UserError(yaml_error_message(error, path)) from error
        except UnicodeDecodeError as error:
            raise UserError(f"config file {path} is not a text (UTF-8) yaml file") from error
        if not isinstance(node, yaml.MappingNode):
            raise UserError(f"config file {path} holds no `key: value` lines (RecBole needs a yaml mapping)")
    return paths


if __name__ == "__main__":
    sys.exit(main())
