"""``python -m recbole_mllmr1 --model=... --dataset=...``: the same as ``run_recbole``."""
import sys

from recbole_mllmr1.quick_start import main

sys.exit(main())
