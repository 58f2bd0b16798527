"""``recbole-mllmr1 compare``: MLLMRecR1 and RecBole baselines on one protocol, in one table.

Every (row, seed) runs through :func:`recbole_mllmr1.quick_start.run_recbole` with the same
dataset, leave-one-out split in time order, evaluation mode, metrics, evaluation batch size
(it fixes how RecBole batches the sampled negatives) and seed; rows differ only in their
model and its own hyperparameters (``baselines/<Model>.yaml``, the row's overrides,
``--config``). A run lives in ``<out>/runs/<model>-<config hash>/seed<seed>/``:

- ``result.json``: metrics, wall times, parameter counts and the inputs of the run;
- ``config.json``: RecBole's resolved configuration;
- ``per_user.npz``: each test user's metrics, for the paired significance tests, and
  ``per_user-<stage>.npz`` for each training stage MLLMRecR1's trainer tests;
- ``model.pth``: RecBole's best checkpoint (RecBole models);
- ``error.txt``: the traceback, when the run failed.

Rows with the same model and config share one run (e.g. "SFT" and "SFT+GRPO" are two
stages of one trained MLLMRecR1). Every row validates (early stopping, adapter selection) in
``--valid-mode`` (default: ``--mode``, the test mode). MLLMRecR1's trainings live in
``--trainings`` (default ``<out>/trainings/``), named by the trainer's run key: runs that differ
only in how they test (the test mode, ``fusion_weight``, ``eval_scoring``) share one training,
also across comparisons that share the folder (the trainer knows the SASRec it reads by its
weights, not its path). A run whose ``result.json`` holds no error is reused unless
``--force``, which also empties the trainings folder. In ``--mode full`` MLLMRecR1 reranks the
top ``--rerank-topk`` items of the SASRec trained in the same comparison (same seed); its row
is compared with SASRec's.

One module per job, each importing only the ones listed before it: ``rows`` (the table's
rows), ``settings`` (what one invocation asks for), ``columns`` (the table's columns),
``plan`` (each run's config, identity hash and folder), ``records`` (what a run folder holds
and what a row reads from it), ``checks`` (per-user test metrics checked against RecBole's),
``execute`` (running the runs), ``statistics`` (the table's numbers and significance tests),
``report`` (results.csv, results.md and the charts) and ``cli``.
"""
