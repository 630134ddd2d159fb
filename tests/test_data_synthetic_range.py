"""``synthetic`` lies inside the recordable range: its darkest exposure records what the reference holds."""

from __future__ import annotations

import pytest

from hdrbench.data import get_dataset, load_card

#: The card's bound: at most 0.1 % of a scene's pixels clipped (any channel at the top code) at EV -3.
MAX_CLIPPED = 0.001


@pytest.mark.slow
def test_every_scene_of_the_default_set_has_at_most_0_1_percent_clipped_at_ev_minus_3():
    assert "0.1 %" in load_card("synthetic").section("ground_truth")["recordable"]
    ds = get_dataset("synthetic")
    assert len(ds.scenes("train")) == 24 and len(ds.scenes("test")) == 8  # the card's default set
    for split in ("train", "test"):
        for name in ds.scenes(split):
            s = ds.load(split, name)
            darkest = s.stack[s.evs.index(-3.0)]
            clipped = float((darkest >= 1.0).any(dim=0).float().mean())
            assert clipped <= MAX_CLIPPED, f"{split}/{name}: {100 * clipped:.3f} % clipped at EV -3"
