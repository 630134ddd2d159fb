"""Every trained method in the registries (``baselines_support.trained_methods``: the shipped baselines and the
test-only ``toy-gain``) trains with its ``tiny`` preset through the generic trainer on the real HDR folder and is
then evaluated from the checkpoint the trained-method loader finds by recipe name and dataset."""

from __future__ import annotations

import numpy as np
import pytest

from baselines_support import train_and_evaluate, trained_method_params

STACK_EVS = [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("recipe", trained_method_params())
def test_trains_and_evaluates_end_to_end(recipe, shared_data, tmp_path):
    records, method = train_and_evaluate(recipe, shared_data, tmp_path)
    if method.kind == "direct":  # one scene, one HDR metric: one row, scored
        hdr = records[records.target == "hdr"]
        assert len(hdr) == 1 and hdr.error.isna().all() and np.isfinite(hdr.value).all()
        return
    # A stack method: every generated exposure is scored, and so is the HDR merged from them (or its own).
    assert sorted(set(records[records.target == "stack"].ev)) == STACK_EVS
    assert {"stack", "hdr"} <= set(records.target)
    assert records.error.isna().all() and np.isfinite(records.value).all()
