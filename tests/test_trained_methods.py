"""Every trained method in the registries: golden outputs of its tiny variant and its declared parameter count.

Parametrised by :func:`baselines_support.trained_methods` at collection time (the shipped baselines and the
test-only ``toy-gain``), so a newly registered method is covered without editing this file: it needs a golden
file (``python tests/golden/make_baselines_golden.py NAME``) and ``[card] parameters`` in its recipe.
"""

from __future__ import annotations

import pytest

from baselines_support import assert_golden, method_name, trained_method_params, trained_methods


@pytest.mark.parametrize("ref", trained_method_params())
def test_golden_output_of_the_tiny_variant(ref):
    assert_golden(ref)


@pytest.mark.parametrize("ref", trained_method_params())
def test_parameter_count_is_the_one_the_card_declares(ref):
    from hdrbench.train.recipes import load_recipe, parameter_counts

    recipe = load_recipe(ref, preset="paper")
    declared = recipe.get("card", {}).get("parameters")
    assert isinstance(declared, int), (f"recipe {recipe.path}: declare the arch's parameter count at the paper "
                                       "preset as [card] parameters = <int>")
    assert parameter_counts(recipe)["total"] == declared


def test_a_registered_test_only_method_is_picked_up():
    # toy-gain is registered only by importing tests/toy_method.py and by its recipe in tests/methods/; that
    # it appears here means the parametrisations above and in test_baselines_end_to_end include it.
    names = [method_name(r) for r in trained_methods()]
    assert "toy-gain" in names
    assert {"expandnet", "hdrcnn", "singlehdr", "drtmo", "deep-recursive-hdri", "deep-chain-hdri"} <= set(names)
    assert "proposed" not in names  # covered by its own tests
