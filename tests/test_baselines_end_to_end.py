"""Every baseline recipe trains (``tiny`` preset, generic trainer) on the real HDR folder and is then
evaluated by name through the harness, which loads the checkpoint just written (``baselines_support``)."""

from __future__ import annotations

import numpy as np
import pytest

from baselines_support import train_and_evaluate

STACK_EVS = [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("recipe, output", [
    ("deep-chain-hdri", "stack"), ("deep-recursive-hdri", "stack"), ("drtmo", "stack and hdr"),
    ("expandnet", "hdr"), ("hdrcnn", "hdr"), ("singlehdr", "hdr"),
])
def test_trains_and_evaluates_end_to_end(recipe, output, shared_data, tmp_path):
    records = train_and_evaluate(recipe, shared_data, tmp_path)
    if output == "hdr":  # one scene, one HDR metric: one row, scored
        hdr = records[records.target == "hdr"]
        assert len(hdr) == 1 and hdr.error.isna().all() and np.isfinite(hdr.value).all()
        return
    if output == "stack":  # every generated exposure is scored
        assert sorted(set(records[records.target == "stack"].ev)) == STACK_EVS
    else:
        assert {"stack", "hdr"} <= set(records.target)
    assert records.error.isna().all() and np.isfinite(records.value).all()
