"""``recbole-mllmr1 <command>``: the project's tools besides ``run_recbole``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their command runs, so one command's heavy imports never
slow down another. Nothing here imports a command's package to list it: finding a submodule
imports its parent package. ``--help`` of every command loads neither torch nor RecBole: a command
module imports those inside ``run(args)`` (tests/test_import_weight.py checks it).
"""
import argparse
import importlib
import sys

COMMANDS = {
    "convert": ("recbole_mllmr1.dataset_converters.cli", "Convert raw Amazon / MovieLens / MicroLens dumps to RecBole atomic files."),
    "textualize": ("recbole_mllmr1.textualize.cli", "Describe item images as short texts, cached per dataset and backend."),
    "build-cot": ("recbole_mllmr1.cot.cli", "Build the confidence-filtered, mixed-grained CoT training file."),
    "compare": ("recbole_mllmr1.compare.cli", "Run MLLMRecR1 and RecBole baselines side by side."),
    "recommend": ("recbole_mllmr1.recommend", "Show a trained model's reasoning and ranking for one user."),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="recbole-mllmr1", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    argv = sys.argv[1:] if argv is None else argv
    chosen = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub)
    args, _ = parser.parse_known_args(argv) if chosen not in COMMANDS else (parser.parse_args(argv), None)
    return importlib.import_module(COMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
