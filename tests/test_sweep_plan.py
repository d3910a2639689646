"""Sweep plans (featx/sweep/plan.py): the trial limit, and how often results.csv is rewritten."""
from __future__ import annotations

import pytest

from featx.errors import ConfigError


def test_max_trials_lets_a_bigger_grid_be_planned(tmp_path, feature_csv):
    from featx.sweep.plan import SweepOptions, plan_sweep
    from featx.sweep.space import space_from_options
    from featx.models.registry import get_model

    space = space_from_options(get_model("knn"), ["n_neighbors=1,2,3", "weights=uniform,distance"])
    assert space.size("grid") == 6
    options = SweepOptions(csv=feature_csv, model="knn", output=tmp_path / "s", max_trials=5)
    with pytest.raises(ConfigError, match="6 combinations, more than the limit of 5"):
        plan_sweep(options, space)
    options.max_trials = 6
    assert len(plan_sweep(options, space).trials) == 6
    sampled = SweepOptions(csv=feature_csv, model="knn", output=tmp_path / "r", search="random",
                           n_iter=50, max_trials=5)
    # sampling a 6-point grid 50 times gives its 6 combinations once each
    with pytest.raises(ConfigError, match="random search has 6 combinations"):
        plan_sweep(sampled, space)
    sampled.max_trials = 6
    assert len(plan_sweep(sampled, space).trials) == 6


def test_results_csv_is_rewritten_every_few_seconds_not_after_every_trial(tmp_path, feature_csv):
    from featx.sweep.plan import RESULTS_INTERVAL, SweepOptions, plan_sweep, write_results
    from featx.sweep.space import RESULTS, space_from_options
    from featx.models.registry import get_model

    space = space_from_options(get_model("knn"), ["n_neighbors=1,2"])
    out = tmp_path / "s"
    out.mkdir()
    plan = plan_sweep(SweepOptions(csv=feature_csv, model="knn", output=out), space)
    assert write_results(plan, {}, throttle=True) is not None  # the first write happens
    (out / RESULTS).write_text("marker\n")
    assert write_results(plan, {}, throttle=True) is None  # too soon: skipped
    assert (out / RESULTS).read_text() == "marker\n"
    assert write_results(plan, {}) is not None  # an unthrottled (final) write always happens
    assert (out / RESULTS).read_text().startswith("n_neighbors,")
    last, took = plan.results_written
    plan.results_written = (last - RESULTS_INTERVAL - 10 * took - 1, took)
    assert write_results(plan, {}, throttle=True) is not None  # enough time has passed
