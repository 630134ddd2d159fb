"""Metric validity: does each HDR metric, under each protocol, see graded distortions of a dataset's references?

For every test scene of a dataset, the reference HDR that each protocol declares (``Protocol.hdr_reference``,
chosen as the evaluation harness chooses it: the dataset's HDR image, or the ground-truth stack merged by the
protocol's ``stack_merge`` layer) is distorted at graded strengths and each distorted image is scored against the
reference with every HDR metric under every protocol. Two kinds of check follow (:func:`summarise`):

* **detect**: the distortions of :mod:`hdrbench.metrics.distortions` of kind ``detect`` and
  ``untrained-network`` (below). On the mean over scenes, the score must get worse with strength: Spearman's
  rho between strength and mean score <= -0.9 for a metric where higher is better (>= 0.9 where lower is
  better). With 5 strengths, -0.9 allows one swap of neighbours and nothing more. ``pair_accuracy`` is the
  fraction of (scene, strength pair) cases ordered strictly correctly (ties count as wrong).
* **invariance**: every distortion named in the protocol's ``invariances``. A fixed base distortion
  (:data:`INVARIANCE_BASE`, so that scores are finite and away from their ceiling) is applied first; the claimed
  one then runs at each of its strengths on top. ``max_abs_change`` is the largest |score - score of the base|
  over scenes and strengths; the check passes when every change is at most
  ``INVARIANCE_RTOL * max(1, |score of the base|)``. The built-in claims are exact algebraic invariances (the
  factor cancels in the protocol's formula), so only float64 rounding and ``singlehdr``'s 1e-8 guard in its
  denominator (which weighs most at the factor 2^-6) can move a score: measured on ``photos`` and ``synthetic``,
  at most 3e-5 dB of PU21-PSNR and 5e-7 Q (about 1e-6 relative; ``display``: 1e-13 and below). 1e-4 relative
  leaves two orders of magnitude of room for that and is still far below any difference that matters (0.01 Q
  at Q = 100, while methods differ by tenths to tens of Q). A protocol whose claim is false moves scores by far more.
  Metrics that do not pass through a protocol (input domain ``linear-relative``: ``mu-psnr``, ``log-psnr``) are
  not covered by a protocol's claim and get no invariance rows; their detect rows repeat under every protocol.

``untrained-network``: the HDR image that the proposed method's networks, freshly initialised from ``seed``
(recipe ``proposed``, preset ``network_preset``, never trained), produce from the scene's EV 0 input: their
stack merged by the protocol's merge layer with a Debevec-Malik curve estimated from that stack (what
evaluating the method under that protocol would score). Strength w in (0.2, 0.4, 0.6, 0.8, 1.0) blends the
reference towards it (:func:`hdrbench.metrics.distortions.blend_towards`: the network output is first brought to
the reference's scale by the median luminance ratio), so the distance to the reference is exactly w times that
of the network output.

A third check, **rank**, asks whether a metric under a protocol places that broken output below the simplest
training-free bound. Per scene it compares the ``untrained-network`` score at w = 1 (the row the detect check
already scored) with the score of :data:`BOUND_METHOD` (``exposure-scaling``: the input linearised by the scene's
reference inverse CRF, scaled by 2^EV, re-encoded, merged with its own curve), computed by the evaluation
harness's own code for that method (:func:`hdrbench.evaluate.harness.score_scene_hdr`: the protocol's reference
and merge layer, the scene context's reference curve), so it is the score ``hdrbench evaluate`` records. Those
scores are kept as rows of kind ``bound`` (distortion ``exposure-scaling``, strength NaN). The check passes when
the untrained network scores strictly worse (in the metric's ``higher_is_better`` sense; a NaN on either side
counts as not worse) on at least :data:`RANK_THRESHOLD` of the scenes; its ``pair_accuracy`` is that fraction of
scenes, ``spearman`` and ``max_abs_change`` are NaN. Without the untrained network (``network_preset`` None) the
check is skipped and the bound not computed.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from hdrbench.errors import DatasetError, InputError
from hdrbench.metrics import distortions as dist
from hdrbench.metrics.protocols import Protocol, get_protocol, list_protocols
from hdrbench.metrics.registry import compute_hdr_metrics, get_metric, list_metrics

SUMMARY_COLUMNS: tuple[str, ...] = (
    "dataset", "protocol", "metric", "distortion", "kind", "spearman", "pair_accuracy", "max_abs_change", "passed",
)
SCORE_COLUMNS: tuple[str, ...] = ("dataset", "protocol", "metric", "distortion", "kind", "strength", "scene", "score")
NETWORK_DISTORTION = "untrained-network"
NETWORK_WEIGHTS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
#: Recipe and default preset of the untrained network (the recipe's CPU scale: what trains on this machine class).
NETWORK_RECIPE = "proposed"
NETWORK_PRESET = "cpu"
#: Base distortion and strength under an invariance check.
INVARIANCE_BASE: tuple[str, float] = ("gaussian-noise", 0.05)
SPEARMAN_THRESHOLD = 0.9
INVARIANCE_RTOL = 1e-4
#: The training-free method the untrained network must score below (rank check), its score rows' ``kind``, and
#: the rank check's ``kind``.
BOUND_METHOD = "exposure-scaling"
BOUND_KIND = "bound"
RANK_KIND = "rank"
#: Fraction of scenes on which the untrained network must score worse than :data:`BOUND_METHOD`: the benchmark's
#: stated goal (a meaningful default ranks an untrained network below exposure scaling on >= 90 % of the scenes;
#: with 8 scenes that means all 8, since 7/8 = 87.5 %).
RANK_THRESHOLD = 0.9
#: Seed offset of the base distortion's noise, so that a claimed noise invariance draws a different field.
_BASE_SEED_OFFSET = 7919


def hdr_metric_names() -> list[str]:
    """Every registered metric defined on HDR input (all but the ``ldr-display`` stack metrics)."""
    return [n for n in list_metrics() if get_metric(n).input_domain != "ldr-display"]


def default_protocol_names() -> list[str]:
    """Registered protocols that map relative HDR and fix a viewing geometry (``absolute`` does neither)."""
    out = []
    for n in list_protocols():
        p = get_protocol(n)
        if p.ppd is not None or p.display_geometry is not None:
            out.append(n)
    return out


def _resolve_protocol(name: str | Protocol) -> Protocol:
    p = name if isinstance(name, Protocol) else get_protocol(name)
    if p.ppd is None and p.display_geometry is None:
        raise InputError(f"protocol {p.name!r} has no viewing geometry: it scores absolute cd/m^2 input with a"
                         " caller-given ppd, while validate-metrics distorts the dataset's relative HDR; choose one"
                         f" of {', '.join(default_protocol_names())}")
    for inv in p.invariances:
        if inv != NETWORK_DISTORTION:
            dist.get_distortion(inv)  # an unknown claim fails here, with did-you-mean
    return p


# --------------------------------------------------------------------------------------------------
# The untrained network


def untrained_network(preset: str = NETWORK_PRESET, seed: int = 0, device: str | torch.device = "cpu"):
    """The proposed method's networks at recipe preset ``preset``, initialised from ``seed`` and never trained."""
    from hdrbench.models import build_arch
    from hdrbench.train.recipes import load_recipe

    recipe = load_recipe(NETWORK_RECIPE, preset=preset)
    torch.manual_seed(int(seed))
    return build_arch(recipe["arch"], **(recipe.get("model") or {})).to(device).eval()


def network_stack(model, ldr: torch.Tensor, evs: Sequence[float]) -> torch.Tensor:
    """The network's stack (1, E, 3, H, W) in [0, 1] from ``ldr`` (1, 3, H, W) in [0, 1] at ``evs``."""
    with torch.inference_mode():
        return model.predict_stack(ldr.float(), [float(e) for e in evs]).clamp(0.0, 1.0)


def network_hdr(model, ldr: torch.Tensor, evs: Sequence[float], *, layer: str = "hdrbench",
                stack: torch.Tensor | None = None) -> torch.Tensor:
    """The network's stack from ``ldr`` (1, 3, H, W) in [0, 1] at ``evs``, merged as the harness merges it.

    Args:
        layer: the merge layer (``hdrbench`` or ``official``: a protocol's ``stack_merge``).
        stack: the network's stack when already computed (:func:`network_stack`).

    Returns:
        (1, 3, H, W) float64 linear relative HDR, >= 0.
    """
    from hdrbench.evaluate.harness import merge_scene_stack

    if stack is None:
        stack = network_stack(model, ldr, evs)
    with torch.inference_mode():
        hdr = merge_scene_stack(stack, [float(e) for e in evs], "debevec", layer=layer).hdr
    hdr = hdr.to(torch.float64).clamp_min(0.0)
    if not bool(torch.isfinite(hdr).all()):
        raise InputError("the untrained network's merged HDR contains NaN or Inf")
    return hdr


def network_distortion(net_hdr: torch.Tensor) -> dist.Distortion:
    """The ``untrained-network`` distortion of one scene: blend its reference towards ``net_hdr``."""
    return dist.Distortion(
        NETWORK_DISTORTION, "detect", NETWORK_WEIGHTS, 0.0, "blend weight w",
        "reference blended towards the untrained proposed networks' merged HDR (scale-aligned by median ratio)",
        "|distorted - reference| = w |aligned network output - reference| at every pixel",
        lambda hdr, w, seed: dist.blend_towards(hdr, net_hdr.to(hdr), w),
    )


def bound_rows(method, scene, protocol: Protocol, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Score :data:`BOUND_METHOD` on one scene under ``protocol`` through the evaluation harness.

    Args:
        method: the bound's :class:`~hdrbench.evaluate.methods.Method` (``get_method(BOUND_METHOD)``).
        scene: the loaded scene.
        protocol: the protocol (its reference and merge layer are the harness's to honour).
        metrics: HDR metric names.

    Returns:
        Rows with ``protocol, metric, distortion, kind, strength, score``: ``distortion`` = :data:`BOUND_METHOD`,
        ``kind`` = :data:`BOUND_KIND`, ``strength`` NaN, ``score`` NaN where the harness recorded an error.
    """
    from hdrbench.evaluate.harness import score_scene_hdr

    scored = score_scene_hdr(method, scene, protocol, metrics)
    return [dict(protocol=protocol.name, metric=m, distortion=BOUND_METHOD, kind=BOUND_KIND, strength=math.nan,
                 score=float(scored[m].value)) for m in metrics]


# --------------------------------------------------------------------------------------------------
# Scoring


def plan(protocol: Protocol) -> list[tuple[str, str]]:
    """(distortion, kind) pairs checked under ``protocol``: every detect distortion (an invariance instead when
    the protocol claims it), then the protocol's other claimed invariances."""
    detect = dist.list_distortions("detect") + [NETWORK_DISTORTION]
    out = [(d, "invariance" if d in protocol.invariances else "detect") for d in detect]
    out += [(d, "invariance") for d in protocol.invariances if d not in detect]
    return out


def _score(batch: torch.Tensor, ref: torch.Tensor, protocol: Protocol, metrics: Sequence[str]) -> dict[str, list]:
    vals = compute_hdr_metrics(batch, ref.expand_as(batch), protocol=protocol, metrics=list(metrics),
                               allow_small_window=True)
    return {m: [float(v) for v in vals[m]] for m in metrics}


def score_scene(ref: torch.Tensor, protocol: Protocol, metrics: Sequence[str], *, seed: int,
                net_hdr: torch.Tensor | None) -> list[dict[str, Any]]:
    """Score every planned distortion of one reference under one protocol.

    Args:
        ref: (1, 3, H, W) float64 linear relative reference HDR, >= 0.
        protocol: the protocol.
        metrics: HDR metric names.
        seed: seed of the random distortions (the same field at every strength).
        net_hdr: (1, 3, H, W) the untrained network's HDR for this scene, or None to skip that distortion.

    Returns:
        Rows with ``protocol, metric, distortion, kind, strength, score``. Invariance rows include the base
        image at the distortion's identity strength.
    """
    rows: list[dict[str, Any]] = []
    base_d, base_s = INVARIANCE_BASE
    base = None
    for name, kind in plan(protocol):
        if name == NETWORK_DISTORTION:
            if net_hdr is None:
                continue
            d = network_distortion(net_hdr)
        else:
            d = dist.get_distortion(name)
        if kind == "detect":
            strengths = list(d.strengths)
            batch = torch.cat([d(ref, s, seed) for s in strengths])
        else:
            if base is None:
                base = dist.get_distortion(base_d)(ref, base_s, seed + _BASE_SEED_OFFSET)
            strengths = [d.identity, *d.strengths]
            batch = torch.cat([d(base, s, seed) for s in strengths])
        scores = _score(batch, ref, protocol, metrics)
        for m in metrics:
            if kind == "invariance" and get_metric(m).input_domain != "absolute-cd/m2":
                continue  # the protocol is not applied to this metric: its claim does not cover it
            for s, v in zip(strengths, scores[m]):
                rows.append(dict(protocol=protocol.name, metric=m, distortion=name, kind=kind, strength=float(s),
                                 score=v))
    return rows


def resolve(dataset: str, *, protocols: Sequence[str | Protocol] | None = None,
            metrics: Sequence[str] | None = None, limit: int | None = None, root: str | None = None,
            resolution: Any = None, dataset_options: dict | None = None):
    """Check every name before anything is computed: ``(protocols, metric names, dataset)``.

    Raises:
        UnknownNameError: unknown dataset, protocol, metric or claimed distortion (did-you-mean).
        InputError: a stack metric, a protocol without viewing geometry, ``limit`` < 1.
    """
    from hdrbench.data import get_dataset

    protos = [_resolve_protocol(p) for p in (protocols or default_protocol_names())]
    metric_names = list(dict.fromkeys(metrics or hdr_metric_names()))
    for m in metric_names:
        if get_metric(m).input_domain == "ldr-display":
            raise InputError(f"metric {m!r} is a stack metric on display-referred images; validate-metrics scores"
                             f" HDR images: choose among {', '.join(hdr_metric_names())}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1, got {limit}")
    ds = get_dataset(dataset, root=root, resolution=resolution, **(dataset_options or {}))
    return protos, metric_names, ds


def reference_hdr(scene, source: str, layer: str, *, dataset: str = "") -> torch.Tensor:
    """The reference a protocol declares, as the harness chooses it: (1, 3, H, W) float64, >= 0.

    Args:
        scene: a loaded :class:`~hdrbench.data.base.Scene`.
        source: the protocol's ``hdr_reference``: ``dataset`` (the scene's HDR image, or its merged ground-truth
            stack where it has none) or ``gt-stack`` (always the merged ground-truth stack).
        layer: the protocol's ``stack_merge`` (the merge layer of the ground-truth stack).
    """
    from hdrbench.evaluate.harness import merge_scene_stack

    if source == "dataset" and scene.hdr is not None:
        ref = scene.hdr[None]
    elif scene.stack is not None:
        with torch.inference_mode():
            ref = merge_scene_stack(scene.stack[None], [float(e) for e in scene.evs], "debevec", layer=layer).hdr
    else:
        raise DatasetError(f"dataset {dataset!r}: scene {scene.name} has no ground-truth stack to merge for the"
                           f" reference ({source}) and no HDR image")
    return ref.to(torch.float64).clamp_min(0.0)


@dataclass
class ValidityResult:
    """Per-scene scores (columns :data:`SCORE_COLUMNS`), the checks (:data:`SUMMARY_COLUMNS`) and run facts."""

    scores: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def validate_metrics(dataset: str, *, protocols: Sequence[str | Protocol] | None = None,
                     metrics: Sequence[str] | None = None, limit: int | None = None, split: str = "test",
                     seed: int = 0, network_preset: str | None = NETWORK_PRESET, root: str | None = None,
                     resolution: Any = None, dataset_options: dict | None = None,
                     progress: bool = True) -> ValidityResult:
    """Run the metric-validity study on a dataset split (see the module docstring).

    Args:
        dataset: dataset name (``synthetic``, ``photos``, ``hdr-folder:<path>``...).
        protocols: protocol names or objects; default :func:`default_protocol_names`.
        metrics: HDR metric names; default :func:`hdr_metric_names`.
        limit: use only the first ``limit`` scenes of the split.
        split: dataset split (default ``test``).
        seed: seed of the random distortions (scene i uses ``seed + i``) and of the untrained network.
        network_preset: preset of the untrained network's recipe; None leaves that distortion out.
        root, resolution, dataset_options: passed to :func:`hdrbench.data.get_dataset`.
        progress: show a progress bar (stderr).

    Raises:
        UnknownNameError: unknown dataset, protocol, metric, distortion claim or preset (did-you-mean).
        InputError / DatasetError: a stack metric requested, a protocol without geometry, an empty split.
    """
    protos, metric_names, ds = resolve(dataset, protocols=protocols, metrics=metrics, limit=limit, root=root,
                                       resolution=resolution, dataset_options=dataset_options)
    scenes = ds.scenes(split)[: limit or None]
    if not scenes:
        raise DatasetError(f"dataset {ds.name!r}: split {split!r} is empty")
    model = untrained_network(network_preset, seed) if network_preset else None
    bound = None
    if model is not None:
        from hdrbench.evaluate.methods import get_method

        bound = get_method(BOUND_METHOD, dataset=ds.name, device="cpu")

    rows: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(scenes) * len(protos), desc=f"validate-metrics {ds.name}", unit="scene",
                   file=sys.stderr)
    for i, name in enumerate(scenes):
        scene = ds.load(split, name)
        stack = network_stack(model, scene.input[None], scene.evs) if model is not None else None
        refs: dict[tuple[str, str], torch.Tensor] = {}
        nets: dict[str, torch.Tensor] = {}
        for p in protos:
            key = (p.hdr_reference, p.stack_merge)
            if key not in refs:
                refs[key] = reference_hdr(scene, *key, dataset=ds.name)
            if stack is not None and p.stack_merge not in nets:
                nets[p.stack_merge] = network_hdr(model, scene.input[None], scene.evs, layer=p.stack_merge,
                                                  stack=stack)
            if bar is not None:
                bar.set_postfix_str(f"{name} {p.name}")
            for r in score_scene(refs[key], p, metric_names, seed=seed + i, net_hdr=nets.get(p.stack_merge)):
                rows.append({"dataset": ds.name, "scene": name, **r})
            if bound is not None:
                for r in bound_rows(bound, scene, p, metric_names):
                    rows.append({"dataset": ds.name, "scene": name, **r})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    scores = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    info = {
        "dataset": ds.name, "split": split, "scenes": scenes, "seed": seed,
        "protocols": {p.name: {"version": p.version, "invariances": list(p.invariances),
                               "hdr_reference": p.hdr_reference, "stack_merge": p.stack_merge} for p in protos},
        "metrics": {m: get_metric(m).version for m in metric_names},
        "network": None if model is None else {"recipe": NETWORK_RECIPE, "preset": network_preset, "seed": seed},
        "invariance_base": {"distortion": INVARIANCE_BASE[0], "strength": INVARIANCE_BASE[1]},
        "spearman_threshold": SPEARMAN_THRESHOLD, "invariance_rtol": INVARIANCE_RTOL,
        "rank": None if bound is None else {"bound": BOUND_METHOD, "bound_config": bound.config(),
                                            "threshold": RANK_THRESHOLD},
        # The untrained network's merged HDR depends on the CPU thread count at rounding level (up to 0.06 Q
        # of HDR-VDP-2), so a rerun matches these scores only with the same torch and the same thread count.
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    return ValidityResult(scores=scores, summary=summarise(scores), info=info)


# --------------------------------------------------------------------------------------------------
# Checks


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    y = np.asarray(y, dtype=np.float64)
    if np.isnan(y).any() or len(set(y.tolist())) < 2:
        return math.nan  # undefined for a constant curve: counted as a failure
    rho = float(spearmanr(np.asarray(x, dtype=np.float64), y).statistic)
    # Rounded so that the exact rank values (-0.9 for one swap of neighbours among 5) meet the threshold
    # instead of missing it by floating-point rounding (-0.8999999999999999).
    return round(rho, 12)


def _pair_accuracy(g: pd.DataFrame, higher_is_better: bool) -> float:
    """Fraction of (scene, strength pair) cases where the stronger distortion scores strictly worse."""
    good = total = 0
    for _, sg in g.groupby("scene", sort=False):
        v = sg.sort_values("strength")["score"].to_numpy(dtype=np.float64)
        for i, j in itertools.combinations(range(len(v)), 2):
            total += 1
            good += bool(v[j] < v[i]) if higher_is_better else bool(v[j] > v[i])
    return good / total if total else math.nan


def _invariance(g: pd.DataFrame, identity: float) -> tuple[float, bool]:
    worst, ok = 0.0, True
    for _, sg in g.groupby("scene", sort=False):
        base = sg.loc[sg["strength"] == identity, "score"]
        if base.empty:
            return math.nan, False
        b = float(base.iloc[0])
        change = (sg.loc[sg["strength"] != identity, "score"].to_numpy(dtype=np.float64) - b)
        change = np.abs(change)
        if not np.isfinite(change).all():
            return math.nan, False
        worst = max(worst, float(change.max(initial=0.0)))
        ok = ok and bool((change <= INVARIANCE_RTOL * max(1.0, abs(b))).all())
    return worst, ok


def _identity(name: str) -> float:
    return 0.0 if name == NETWORK_DISTORTION else dist.get_distortion(name).identity


def rank_counts(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, protocol, metric): on how many scenes the untrained network scores worse than the bound.

    Args:
        scores: per-scene scores with :data:`SCORE_COLUMNS`, including the ``untrained-network`` detect rows at
            w = 1 and the :data:`BOUND_KIND` rows.

    Returns:
        Columns ``dataset, protocol, metric, below, scenes``: ``scenes`` counts the scenes with an untrained-network
        score at w = 1; ``below`` those where it is strictly worse than the bound's score on the same scene (a
        missing or NaN score on either side is not worse). Empty when either side is absent.
    """
    keys = ["dataset", "protocol", "metric"]
    net = scores[(scores["distortion"] == NETWORK_DISTORTION) & (scores["kind"] == "detect")
                 & (scores["strength"] == 1.0)]
    bnd = scores[scores["kind"] == BOUND_KIND]
    out = []
    if not net.empty and not bnd.empty:
        both = net[keys + ["scene", "score"]].merge(bnd[keys + ["scene", "score"]], on=keys + ["scene"], how="left",
                                                    suffixes=("_net", "_bound"))
        bounded = set(bnd[keys].itertuples(index=False, name=None))
        for key, g in both.groupby(keys, sort=False):
            if key not in bounded:
                continue  # no bound under this protocol/metric: no check rather than a vacuous failure
            a, b = g["score_net"].to_numpy(np.float64), g["score_bound"].to_numpy(np.float64)
            worse = (a < b) if get_metric(key[2]).higher_is_better else (a > b)  # NaN compares False
            out.append(dict(zip(keys, key), below=int(worse.sum()), scenes=len(g)))
    return pd.DataFrame(out, columns=[*keys, "below", "scenes"])


def rank_scene_counts(scores: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """:func:`rank_counts` of one dataset's scores as ``{(protocol, metric): (below, scenes)}`` (for report text)."""
    return {(r.protocol, r.metric): (r.below, r.scenes) for r in rank_counts(scores).itertuples(index=False)}


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, metric, distortion, kind): the checks of the module docstring.

    Args:
        scores: per-scene scores with :data:`SCORE_COLUMNS`.

    Returns:
        A frame with :data:`SUMMARY_COLUMNS`; ``spearman``/``pair_accuracy`` are NaN on invariance rows,
        ``max_abs_change`` NaN on detect rows; rank rows (kind :data:`RANK_KIND`, distortion ``untrained-network``)
        have ``pair_accuracy`` = the fraction of scenes where the untrained network scores worse than
        :data:`BOUND_METHOD` and the other two NaN.
    """
    out = []
    keys = ["dataset", "protocol", "metric", "distortion", "kind"]
    for key, g in scores[scores["kind"] != BOUND_KIND].groupby(keys, sort=False):
        row = dict(zip(keys, key))
        hib = get_metric(row["metric"]).higher_is_better
        if row["kind"] == "detect":
            mean = g.groupby("strength")["score"].mean().sort_index()
            rho = _spearman(mean.index.to_numpy(), mean.to_numpy())
            passed = (rho <= -SPEARMAN_THRESHOLD) if hib else (rho >= SPEARMAN_THRESHOLD)
            row.update(spearman=rho, pair_accuracy=_pair_accuracy(g, hib), max_abs_change=math.nan,
                       passed=bool(passed) if not math.isnan(rho) else False)
        else:
            change, ok = _invariance(g, _identity(row["distortion"]))
            row.update(spearman=math.nan, pair_accuracy=math.nan, max_abs_change=change, passed=ok)
        out.append(row)
    for r in rank_counts(scores).itertuples(index=False):
        frac = r.below / r.scenes if r.scenes else math.nan
        out.append(dict(dataset=r.dataset, protocol=r.protocol, metric=r.metric, distortion=NETWORK_DISTORTION,
                        kind=RANK_KIND, spearman=math.nan, pair_accuracy=frac, max_abs_change=math.nan,
                        passed=bool(frac >= RANK_THRESHOLD) if r.scenes else False))
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def failures(summary: pd.DataFrame, scores: pd.DataFrame | None = None) -> list[str]:
    """One line per failed check, e.g. ``singlehdr / hdrvdp2: does not detect colour-cast (Spearman -0.60)``.

    ``scores`` (optional) gives a failed rank check its scene counts (``6 of 8 scenes``) instead of a percentage.
    """
    counts = rank_scene_counts(scores) if scores is not None else {}
    lines = []
    for r in summary[~summary["passed"].astype(bool)].itertuples(index=False):
        if r.kind == RANK_KIND:
            k_n = counts.get((r.protocol, r.metric))
            share = f"{k_n[0]} of {k_n[1]} scenes" if k_n else f"{100.0 * r.pair_accuracy:.1f} % of the scenes"
            lines.append(f"{r.protocol} / {r.metric}: ranks the untrained network below {BOUND_METHOD} on only"
                         f" {share} (needs >= {100.0 * RANK_THRESHOLD:g} %)")
        elif r.kind == "detect":
            lines.append(f"{r.protocol} / {r.metric}: does not detect {r.distortion} (Spearman {r.spearman:.2f},"
                         f" pair accuracy {r.pair_accuracy:.2f})")
        else:
            lines.append(f"{r.protocol} / {r.metric}: claimed invariance to {r.distortion} does not hold (max |change|"
                         f" {r.max_abs_change:.3g})")
    return lines


__all__ = [
    "BOUND_KIND", "BOUND_METHOD", "INVARIANCE_BASE", "INVARIANCE_RTOL", "NETWORK_DISTORTION", "NETWORK_WEIGHTS",
    "RANK_KIND", "RANK_THRESHOLD", "SCORE_COLUMNS", "SPEARMAN_THRESHOLD", "SUMMARY_COLUMNS", "ValidityResult",
    "bound_rows", "default_protocol_names", "failures", "hdr_metric_names", "network_distortion", "network_hdr",
    "network_stack", "plan", "rank_counts", "rank_scene_counts", "reference_hdr", "resolve", "score_scene", "summarise",
    "untrained_network", "validate_metrics",
]
