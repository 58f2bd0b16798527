"""recbole-mllmr1: MLLMRec-R1 as a RecBole plugin."""
from recbole_mllmr1 import compat

compat.apply()

__version__ = "0.1.0"
