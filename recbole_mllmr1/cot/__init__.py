"""Chain-of-thought training data: pseudo-CoT, structured rationale, measured confidence, mixed-grained SFT file.

The package imports none of its modules, so that ``recbole-mllmr1 build-cot --help`` (which imports
``recbole_mllmr1.cot.cli``, and so this package) loads neither torch nor transformers: import
``build_mixed_grained_dataset`` and ``provenance_path`` from ``recbole_mllmr1.cot.build``.
"""
