"""Per-user test metrics of a finished run, checked against the (rounded) numbers RecBole reports."""


def _checked(evaluation, recbole_result, what):
    """``evaluation`` after checking that its per-user means are RecBole's (rounded) numbers."""
    _, per_user = evaluation
    for metric, values in per_user.items():
        if metric in recbole_result and abs(values.mean() - recbole_result[metric]) > 1e-4:
            raise RuntimeError(
                f"per-user {metric} of the {what} evaluation averages {values.mean():.4f} but RecBole reports "
                f"{recbole_result[metric]}: the evaluations were not collected in the expected order."
            )
    return evaluation


def per_user_test_evaluations(trainer, test_result, metrics):
    """Per-user test metrics: ``{"final": ...}``, plus ``{stage: ...}`` when the trainer tests each training stage.

    MLLMRecR1's trainer tests every stage's best adapter (zero-shot first) and returns the
    best one's result; those are the last evaluations, in ``trainer.stage_results`` order.
    """
    collector = trainer.eval_collector
    stage_results = getattr(trainer, "stage_results", None) or {}
    first = len(collector.evaluations) - len(stage_results)
    evaluations = {
        stage: _checked(collector.per_user(first + index, metrics), result, f"stage {stage}")
        for index, (stage, result) in enumerate(stage_results.items())
    }
    if stage_results:
        final = next((evaluations[stage] for stage, result in stage_results.items() if dict(result) == dict(test_result)), None)
        if final is None:
            raise RuntimeError(f"the test result matches none of the stage results {list(stage_results)}.")
    else:
        final = collector.per_user(metrics=metrics)
    evaluations["final"] = _checked(final, test_result, "test")
    return evaluations
