"""Metric cards, the metric registry and the one entry point that scores HDR pairs under a protocol.

A :class:`MetricCard` holds what a harness needs to know about a metric without branching on its name: the
direction, the input domain, the version that goes into every result row, the reference implementation it is
checked against, and whether it is differentiable. Input domains:

* ``ldr-display``: display-referred images in [0, 1] (the stack metrics, ``data_range=1``);
* ``linear-relative``: linear HDR in relative units (mu-law and log PSNR, which normalise by the reference);
* ``absolute-cd/m2``: linear HDR in cd/m^2 (HDR-VDP-2, PU21 metrics), reached through a scaling protocol.

:func:`compute_hdr_metrics` applies the protocol once and feeds each metric the domain its card asks for. The
stack metrics (``psnr``, ``ssim``, ``ms-ssim``) are refused on HDR input: on HDR they would need a tone curve
that no convention fixes; their HDR counterparts are ``pu21-psnr``, ``pu21-ssim``, ``pu21-msssim`` (PU21 is the
standard way to apply them to HDR) and ``mu-psnr``. Use :func:`compute_ldr_metrics` for display-referred pairs.

``python -c "from hdrbench.metrics.registry import write_metrics_docs; write_metrics_docs()"`` regenerates
``docs/metrics.md`` from the cards.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hdrbench.checks import check_pair
from hdrbench.errors import InputError
from hdrbench.metrics import protocols as _protocols
from hdrbench.metrics import pu21 as _pu21
from hdrbench.metrics import stack as _stack
from hdrbench.metrics.card import INPUT_DOMAINS, MetricCard
from hdrbench.metrics.card import MetricContext as _Context
from hdrbench.registry import Registry

COLOR_ENCODINGS = ("rgb-bt.709", "luminance")
#: The metrics a benchmark run and ``hdrbench score`` compute by default: on display-referred stacks (MS-SSIM
#: joins only where the image has room for its five scales) and on linear HDR (scaled by a protocol).
DEFAULT_STACK_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms-ssim")
DEFAULT_HDR_METRICS: tuple[str, ...] = ("hdrvdp2", "pu21-psnr", "pu21-ssim")


METRICS: Registry[MetricCard] = Registry("metric")


def _hdrvdp2_result(t: torch.Tensor, r: torch.Tensor, ctx: _Context):
    # HDR-VDP is the expensive metric: compute it once when both Q and P_det are requested.
    if "hdrvdp2" not in ctx.cache:
        from hdrbench.metrics.hdrvdp2 import hdrvdp2

        ctx.cache["hdrvdp2"] = hdrvdp2(t, r, color_encoding=ctx.color_encoding, ppd=ctx.ppd())
    return ctx.cache["hdrvdp2"]


# The HDR-VDP-2 cards stay here rather than in ``metrics.hdrvdp2``: that package is imported on first use (it is
# the heavy one), and its cards must exist before.
_HDRVDP2_CARDS = (
    MetricCard(
        name="hdrvdp2", higher_is_better=True, input_domain="absolute-cd/m2", version="2.2.2",
        reference_implementation="HDR-VDP 2.2.2 (MATLAB, run under Octave 7.3)", differentiable=False,
        description="HDR-VDP-2.2.2 quality correlate Q (100 = identical), at the protocol's ppd",
        compute=lambda t, r, ctx: _hdrvdp2_result(t, r, ctx).Q.to(torch.float64),
    ),
    MetricCard(
        name="hdrvdp2-pdet", higher_is_better=False, input_domain="absolute-cd/m2", version="2.2.2",
        reference_implementation="HDR-VDP 2.2.2 (MATLAB, run under Octave 7.3)", differentiable=False,
        description="HDR-VDP-2.2.2 probability of detection P_det = max(P_map), in [0, 1]",
        compute=lambda t, r, ctx: _hdrvdp2_result(t, r, ctx).P_det.to(torch.float64),
    ),
)
for _card in (*_stack.CARDS, *_pu21.CARDS, *_HDRVDP2_CARDS):
    METRICS.register(_card.name, _card)


def get_metric(name: str) -> MetricCard:
    """Return the card of metric ``name``.

    Raises:
        UnknownNameError: unknown name, with close matches ("did you mean ...").
    """
    return METRICS.get(name)


def list_metrics(input_domain: str | None = None) -> list[str]:
    """Sorted metric names, optionally only those of one input domain."""
    return [n for n in METRICS.names() if input_domain is None or METRICS.get(n).input_domain == input_domain]


def _parse_names(metrics: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [n for n in names if n]
    if not names:
        raise InputError("metrics: no metric names given")
    for n in names:
        get_metric(n)
    return list(dict.fromkeys(names))


def compute_hdr_metrics(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    protocol: str | _protocols.Protocol,
    metrics: str | list[str] | tuple[str, ...],
    ppd: float | None = None,
    color_encoding: str = "rgb-bt.709",
    allow_small_window: bool = False,
    details: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Score linear HDR test images against references: the protocol is applied once, then each metric runs.

    Args:
        test: (N, 3, H, W) linear RGB (``rgb-bt.709``) or (N, 1, H, W) luminance (``luminance``), relative units
            (or cd/m^2 with the ``absolute`` protocol), >= 0, finite.
        reference: same shape.
        protocol: protocol name or object mapping the pair to cd/m^2 (see :mod:`hdrbench.metrics.protocols`).
        metrics: metric names (list or comma-separated string); stack metrics are refused (see module docstring).
        ppd: pixels per degree for HDR-VDP; default: the protocol's (:meth:`Protocol.ppd_for`).
        color_encoding: ``rgb-bt.709`` or ``luminance`` (passed to HDR-VDP).
        allow_small_window: let the SSIM-based metrics shrink their window on small images (recorded in
            ``details["windows"]``).
        details: optional dict filled with ``protocol`` (name), ``protocol_version``, ``protocol_parameters``,
            ``ppd`` (when used), ``windows`` and, when computed, ``hdrvdp2`` (the full HDR-VDP result with maps).

    Returns:
        ``{metric name: (N,) float64 tensor}`` in the order requested.

    Raises:
        InputError: malformed inputs, a stack metric requested, or an inconsistent colour encoding.
        UnknownNameError: unknown metric or protocol name.
    """
    names = _parse_names(metrics)
    if color_encoding not in COLOR_ENCODINGS:
        raise InputError(f"color_encoding: expected one of {', '.join(COLOR_ENCODINGS)}, got {color_encoding!r}")
    proto = _protocols.get_protocol(protocol) if isinstance(protocol, str) else protocol
    check_pair(test, reference, channels=(1, 3))
    want_c = 3 if color_encoding == "rgb-bt.709" else 1
    if test.shape[1] != want_c:
        raise InputError(
            f"color_encoding {color_encoding!r} expects {want_c} channel(s); test and reference have shape"
            f" {tuple(test.shape)}"
        )
    ldr = [n for n in names if get_metric(n).input_domain == "ldr-display"]
    if ldr:
        raise InputError(
            f"metric(s) {', '.join(ldr)} are stack metrics on display-referred [0, 1] images and are not defined on"
            " linear HDR; use pu21-psnr, pu21-ssim, pu21-msssim (PU21-encoded absolute luminance) or mu-psnr"
        )
    if ppd is not None:
        from hdrbench.checks import check_positive_number

        ppd_value = check_positive_number(ppd, "ppd")
        ppd_fn = lambda: ppd_value  # noqa: E731
    else:
        ppd_fn = lambda: proto.ppd_for(test.shape[-1], test.shape[-2])  # noqa: E731
    ctx = _Context(ppd=ppd_fn, color_encoding=color_encoding, allow_small_window=allow_small_window)
    absolute = None
    out: dict[str, torch.Tensor] = {}
    for n in names:
        card = get_metric(n)
        if card.input_domain == "absolute-cd/m2":
            if absolute is None:
                absolute = proto.apply(test, reference)
            out[n] = card.compute(absolute[0], absolute[1], ctx)
        else:
            out[n] = card.compute(test, reference, ctx)
    if details is not None:
        details.update(
            protocol=proto.name, protocol_version=proto.version, protocol_parameters=proto.parameters(),
            windows=dict(ctx.windows),
        )
        if "hdrvdp2" in ctx.cache:
            details["ppd"] = ctx.ppd()
            details["hdrvdp2"] = ctx.cache["hdrvdp2"]
    return out


def compute_ldr_metrics(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    metrics: str | list[str] | tuple[str, ...],
    allow_small_window: bool = False,
    details: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Score display-referred images in [0, 1] with the stack metrics (``ldr-display`` cards only).

    Args:
        test: (N, C, H, W) in [0, 1].
        reference: same shape.
        metrics: names of ``ldr-display`` metrics.
        allow_small_window: see :func:`compute_hdr_metrics`.
        details: optional dict filled with ``windows``.

    Returns:
        ``{metric name: (N,) float64 tensor}``.
    """
    names = _parse_names(metrics)
    check_pair(test, reference, channels=None)
    other = [n for n in names if get_metric(n).input_domain != "ldr-display"]
    if other:
        raise InputError(
            f"metric(s) {', '.join(other)} need linear HDR input (.hdr/.exr/.pfm), not display-referred images"
        )
    for name, x in (("test", test), ("reference", reference)):
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if lo < 0 or hi > 1:
            raise InputError(f"{name}: display-referred values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    ctx = _Context(ppd=lambda: 0.0, color_encoding="rgb-bt.709", allow_small_window=allow_small_window)
    out = {n: get_metric(n).compute(test, reference, ctx) for n in names}
    if details is not None:
        details["windows"] = dict(ctx.windows)
    return out


def _metric_card_lines() -> list[str]:
    """The page's title, introduction and metric-card table."""
    lines = [
        "# Metrics and scaling protocols",
        "",
        "Generated from the metric cards and the protocol registry by `hdrbench.metrics.registry.metrics_markdown()`",
        "(`write_metrics_docs()` in that module writes it); a test checks that this page is current.",
        "",
        "Input domains: `ldr-display` = display-referred images in [0, 1]; `linear-relative` = linear HDR in",
        "relative units; `absolute-cd/m2` = linear HDR in cd/m^2, reached from relative HDR through a protocol.",
        "Stack metrics are not defined on HDR files: `hdrbench score` refuses them there and points to their",
        "PU21 counterparts.",
        "",
        "## Metric cards",
        "",
        "| name | better | input domain | version | differentiable | reference implementation | description |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in list_metrics():
        c = get_metric(n)
        better = "higher" if c.higher_is_better else "lower"
        lines.append(
            f"| `{c.name}` | {better} | {c.input_domain} | {c.version} | {'yes' if c.differentiable else 'no'} |"
            f" {c.reference_implementation} | {c.description} |"
        )
    return lines


def _protocol_lines() -> list[str]:
    """The scaling-protocol table, stated assumptions and the ``kim2021`` reference section."""
    lines = [
        "",
        "## Scaling protocols",
        "",
        "The reference column says which HDR image the evaluation harness scores a prediction against and which",
        "synthesis layer merges the stacks: `dataset` = the dataset's HDR image (the merged ground-truth stack",
        "where the dataset has none); `gt-stack` = always the merged ground-truth stack; `hdrbench` = the harness's",
        "merge settings; `official` = the official code's layer (`hdrbench.imaging.synthesis.OFFICIAL_LAYER`).",
        "",
        "| name | version | ppd | reference (merge) | parameters | invariances | description |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    assumptions = []
    for n in _protocols.list_protocols():
        p = _protocols.get_protocol(n)
        params = p.parameters()
        ppd = f"{p.ppd:g}" if p.ppd is not None else (
            f"{params['display_geometry'][0]:g} in at {params['display_geometry'][1]:g} m"
            if p.display_geometry else "given by the caller"
        )
        shown = ("name", "version", "ppd", "display_geometry", "hdr_reference", "stack_merge")
        extra = ", ".join(f"{k}={v}" for k, v in params.items() if k not in shown)
        claims = ", ".join(f"`{c}`" for c in p.invariances) or "-"
        lines.append(
            f"| `{p.name}` | {p.version} | {ppd} | {p.hdr_reference} ({p.stack_merge}) | {extra or '-'} | {claims} |"
            f" {p.description} |"
        )
        assumptions += [f"* `{p.name}`: {a}." for a in p.assumptions]
    if assumptions:
        lines += ["", "Stated assumptions (what a protocol fixes that its source does not state):", "", *assumptions]
    lines += [
        "",
        "Any protocol can be followed by the Hanji et al. 2022 colour/tone correction of the test image",
        "(`get_protocol(name, crf_correction=True)`, named `<name>+hanji2022`).",
        "",
        "### `kim2021`: the official test's reference",
        "",
        "The official test code of Kim, Lee & Kang (AAAI 2021) never reads the dataset's HDR image (a training",
        "target only): it merges the predicted 7-exposure stack and the ground-truth stack with the same synthesis",
        "layer, each with the inverse CRF recovered from its own stack, and compares the two merges. `hdrbench",
        "evaluate --protocol kim2021` does the same: every stack (predicted or ground truth) is merged with the",
        "official layer, a method with its own curve (`merge_crf = own`) keeps it, and the reference is the merged",
        "ground-truth stack, so `gt-stack` scores Q = 100 exactly. A method that outputs HDR directly (no stack) is",
        "scored as it is against that same reference. Methods that linearise with the scene's reference curve",
        "(`ldr-linear`, `exposure-scaling` and the iTMOs) get the curve recovered by that merge. Scenes without a",
        "ground-truth stack fail with an error row.",
        "Records carry `protocol = kim2021` and its version; the run's `config.json` says",
        "`hdr_reference: gt-stack-merged-official` and lists the official layer's settings under `merge`. Published",
        "records land beside the `singlehdr` ones as `<method>--kim2021.records.csv`, and `hdrbench tables` reports",
        "Table 3 per protocol (the `protocol` column of `ablation_table`). Any other protocol can take this",
        "reference too: `get_protocol(\"singlehdr\", hdr_reference=\"gt-stack\")`.",
        "",
    ]
    return lines


def _validity_lines() -> list[str]:
    """The metric-validity section: the checks and the distortion table."""
    lines = [
        "## Metric validity (`hdrbench validate-metrics`)",
        "",
        "`hdrbench validate-metrics --dataset NAME [--protocols ...] [--metrics ...] [--limit N] --out DIR` distorts",
        "each test scene's reference HDR at graded strengths, scores every distorted image against the reference",
        "with every HDR metric under every protocol (default: all registered protocols except `absolute`, which",
        "takes cd/m^2 input; the reference is the one each protocol declares, e.g. the ground-truth stack merged",
        "by the official layer under `kim2021`) and writes `DIR/metric_validity.csv` (`dataset, protocol, metric,",
        "distortion, kind, spearman, pair_accuracy, max_abs_change, passed`), the per-scene scores, a Markdown",
        "report and a figure.",
        "",
        "* **detect** checks: the score must get worse with strength on the mean over scenes: Spearman's rho",
        "  between strength and mean score <= -0.9 for a metric where higher is better, >= 0.9 where lower is",
        "  better (5 strengths: at most one swap of neighbours). `pair_accuracy` is the fraction of (scene,",
        "  strength pair) cases ordered strictly correctly. A constant curve (a saturated score) fails.",
        "* **invariance** checks: each distortion named in a protocol's `invariances` (table above) is applied",
        "  on top of a fixed base distortion (`gaussian-noise` at 0.05, so scores are finite and below their",
        "  ceiling); it passes when every score changes by at most 1e-4 x max(1, |score|). The built-in claims",
        "  are exact (the factor cancels in the protocol's formula), so only float64 rounding and `singlehdr`'s",
        "  1e-8 guard move a score (measured on `photos` and `synthetic`: at most 3e-5 dB of PU21-PSNR and 5e-7",
        "  Q, about 1e-6 relative); 1e-4 relative is two orders above that and far below differences between",
        "  methods (0.01 Q at Q = 100). Metrics that do not pass through a protocol",
        "  (`mu-psnr`, `log-psnr`) are not covered by its claims; their detect rows repeat under every protocol.",
        "* **rank** checks: per scene, the `untrained-network` score at w = 1 is compared with the score of the",
        "  training-free `exposure-scaling` (the input linearised by the scene's reference inverse CRF, merged",
        "  with its own curve), computed by the evaluation harness's own code for that method under the",
        "  protocol (its reference and merge layer), i.e. the score `hdrbench evaluate` records. It passes when",
        "  the untrained network scores strictly worse on >= 90 % of the scenes (8 of 8 scenes with 8; a NaN",
        "  counts as not worse); the row's `pair_accuracy` is that fraction of scenes. The bound's per-scene",
        "  scores are rows of kind `bound` (distortion `exposure-scaling`, no strength) in the scores file; the",
        "  Markdown shows a column `untrained < exposure-scaling` (`pass (8/8)`). Metrics that depend on the",
        "  absolute scale (`mu-psnr`, `log-psnr`) compare the median-aligned network output with the unaligned",
        "  bound. Skipped (no rows) with `--network-preset none`.",
        "* A failed check is printed (`FAIL ...`) and marked in the report; the exit status stays 0.",
        "",
        "| distortion | kind | strengths | unit | what is done | graded in the sense (tested) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    from hdrbench.metrics import distortions as _dist

    for n in _dist.list_distortions():
        d = _dist.get_distortion(n)
        strengths = ", ".join(f"{v:g}" for v in d.strengths)
        lines.append(f"| `{d.name}` | {d.kind} | {strengths} | {d.unit} | {d.description} | {d.monotone} |")
    lines += [
        "| `untrained-network` | detect | 0.2, 0.4, 0.6, 0.8, 1 | blend weight w | reference blended towards the"
        " merged HDR of the proposed method's networks, seeded and never trained (recipe `proposed`, preset `cpu`"
        " by default), scale-aligned by the median luminance ratio | the distance to the reference is w times"
        " that of the aligned network output |",
        "",
    ]
    return lines


def _hdrvdp2_lines() -> list[str]:
    """The HDR-VDP 2.2.2 section: the API, its validation, speed and memory."""
    return [
        "## HDR-VDP 2.2.2 in PyTorch",
        "",
        "`hdrbench.metrics.hdrvdp2.hdrvdp2(test, reference, *, color_encoding, ppd)` takes (N, 3, H, W)",
        "(`rgb-bt.709`) or (N, 1, H, W) (`luminance`) tensors in cd/m^2, test first (the metric is asymmetric),",
        "float32 or float64, on CPU or CUDA, and returns `Q`, `P_det`, `C_max` (N,) and `P_map`, `C_map` (N, H, W).",
        "`pix_per_deg(diagonal_inches, (width, height), distance_m)` gives HDR-VDP's viewing geometry. Scaling",
        "relative HDR to cd/m^2 is the protocol's job, never the metric's.",
        "",
        "Validation (`tests/test_metrics_hdrvdp2_reference.py`): the 30 rows of the reference scores (15 pairs at",
        "30 ppd and at a 21-inch display seen from 1 m) computed by the original HDR-VDP 2.2.2 under GNU Octave 7.3.",
        "Measured: max |dQ| 1.4e-8 in float64 and 2.2e-3 in float32; max |dP_det| 4e-11 / 2.3e-4; max |d mean",
        "P_map| 8e-11 / 1.0e-4; C_max 1e-9 / 1.2e-3 relative. Tolerances in the test: |dQ| 1e-5 (float64) and",
        "0.01 (float32). Per-stage values (optics, receptors, transducer, pyramid bands, CSF, masking, band",
        "contributions, maps) are compared with the reference's debug dumps to 1e-8 relative. The steerable pyramid",
        "is checked against pyrtools.",
        "",
        "Speed and memory: `hdrbench bench hdrvdp2 --sizes 512x384,1024x768,1920x1080` reports per size the time",
        "per pair, pixels/s, the peak memory (per megapixel) and the ratio to the reference implementation's 1.2 s",
        "per pair at 512x384 on 2 CPU cores, and with CUDA pairs/s for a batch of 16 at 1024x768; rows go to",
        "`results/bench-hdrvdp2.csv`. Time and memory grow linearly with the pixels; the stage-by-stage profile",
        "and the peak memory per megapixel are in `docs/hdrvdp2-performance.md`. In float32 on the CPU (the evaluation",
        "harness's setting) the masking, resize and photoreceptor stages run as native C++ kernels compiled on first use;",
        "they agree with the torch code to float32 rounding (Q within 2.5e-4 on the 30 reference rows) and float64 runs",
        "the torch code unchanged.",
        "",
    ]


def metrics_markdown() -> str:
    """The ``docs/metrics.md`` page: metric cards and protocols as tables, generated from the registries."""
    return "\n".join(_metric_card_lines() + _protocol_lines() + _validity_lines() + _hdrvdp2_lines())


def write_metrics_docs(path: str | Path | None = None) -> Path:
    """Write :func:`metrics_markdown` to ``path`` (default: ``docs/metrics.md`` of the checkout), atomically."""
    from hdrbench.atomic import atomic_write_text
    from hdrbench.paths import REPO_ROOT

    target = Path(path) if path is not None else Path(REPO_ROOT) / "docs" / "metrics.md"
    atomic_write_text(target, metrics_markdown())
    return target
