"""Chain-of-thought training data: pseudo-CoT, structured rationale, measured confidence, mixed-grained SFT file."""
from recbole_mllmr1.cot.build import build_mixed_grained_dataset, provenance_path

__all__ = ["build_mixed_grained_dataset", "provenance_path"]
