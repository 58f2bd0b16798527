"""SFT and GRPO stages of MLLMRecR1, run by :class:`recbole_mllmr1.trainer.MLLMRecR1Trainer`."""
