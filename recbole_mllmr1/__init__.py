"""recbole-mllmr1: MLLMRec-R1 as a RecBole plugin.

Importing the package loads neither torch nor RecBole, so that tools which need neither (the
dataset converters, ``recbole-mllmr1 <command> --help``) start at once. The RecBole compat fixes
(:mod:`recbole_mllmr1.compat`) are applied by :mod:`recbole_mllmr1.config`, which every code path
that runs RecBole imports.
"""
__version__ = "0.1.0"
