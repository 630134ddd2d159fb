"""Where a method stands: the training-free bounds of a leaderboard and one sentence placing a method between them.

The bounds are three training-free methods evaluated on the same dataset, split, resolution and protocol:

* ``gt-stack``: the true exposure stack merged by the evaluation's own merge, the best a stack-based method can
  reach (its stack is exact, so its stack PSNR is infinite);
* ``exposure-scaling``: the input re-exposed by ``2^EV`` through the inverse CRF, clipped; a method that learns
  nothing about the missing highlights and shadows lands here;
* ``ldr-linear``: the input linearised and used as the HDR image (a direct method: no stack).

:func:`placement` reads their latest leaderboard rows and the method's, and returns one plain sentence for
HDR-VDP-2 and for the stack PSNR (mean over the generated exposures, EV 0 excluded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hdrbench.evaluate.leaderboard import leaderboard_path, read_leaderboard_file

#: The training-free bounds, best first.
BOUNDS: tuple[str, ...] = ("gt-stack", "exposure-scaling", "ldr-linear")
#: The single-exposure (lower) bounds.
LOWER_BOUNDS: tuple[str, ...] = ("exposure-scaling", "ldr-linear")


@dataclass(frozen=True)
class Standing:
    """One method's latest scores on a leaderboard.

    Attributes:
        method: method name.
        run_id: the run the scores come from.
        n_images: scenes of that run (valid plus failed).
        q: HDR-VDP-2 Q mean (NaN when the run has none).
        stack_psnr: mean over the generated EVs (EV 0 excluded) of the per-EV stack PSNR means, in dB (inf
            for an exact stack; NaN when the method predicts no stack).
    """

    method: str
    run_id: str
    n_images: int
    q: float
    stack_psnr: float


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def standing(method: str, *, dataset: str, split: str, resolution: str, protocol: str,
             results: str | Path | None = None, n_images: int | None = None) -> Standing | None:
    """The latest run of ``method`` on ``dataset`` with these settings (and ``n_images`` scenes, when given).

    Returns:
        A :class:`Standing`, or None when the leaderboard holds no such run.
    """
    rows = [r for r in read_leaderboard_file(leaderboard_path(dataset, results))
            if r["method"] == method and r["dataset"] == dataset and r["split"] == split
            and r["resolution"] == resolution]
    runs: dict[str, list[dict]] = {}
    for r in rows:
        runs.setdefault(r["run_id"], []).append(r)
    candidates = []
    for run_id, rs in runs.items():
        hdr = [r for r in rs if r["target"] == "hdr" and r["protocol"] == protocol]
        if not hdr:
            continue
        n = max(int(_float(r["n_images"])) + int(_float(r["n_failed"])) for r in hdr)
        if n_images is not None and n != n_images:
            continue
        candidates.append((max(r["timestamp"] for r in rs), run_id, rs, hdr, n))
    if not candidates:
        return None
    _, run_id, rs, hdr, n = max(candidates)
    q = next((_float(r["mean"]) for r in hdr if r["metric"] == "hdrvdp2"), math.nan)
    psnr = [_float(r["mean"]) for r in rs if r["target"] == "stack" and r["metric"] == "psnr"
            and _float(r["ev"]) != 0.0]
    stack_psnr = sum(psnr) / len(psnr) if psnr else math.nan
    return Standing(method, run_id, n, q, stack_psnr)


def missing_bounds(*, dataset: str, split: str, resolution: str, protocol: str, n_images: int,
                   results: str | Path | None = None) -> list[str]:
    """The bounds the leaderboard lacks for these settings and this number of scenes."""
    return [b for b in BOUNDS if standing(b, dataset=dataset, split=split, resolution=resolution, protocol=protocol,
                                          results=results, n_images=n_images) is None]


def _q(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _db(x: float) -> str:
    return "exact" if x == math.inf else ("n/a" if math.isnan(x) else f"{x:.2f} dB")


def placement(method: str, *, dataset: str, split: str, resolution: str, protocol: str,
              results: str | Path | None = None) -> str:
    """One plain sentence placing ``method`` between the bounds for HDR-VDP-2 and for stack PSNR.

    Raises:
        InputError: the leaderboard lacks the method's run or one of the bounds.
    """
    from hdrbench.errors import InputError

    me = standing(method, dataset=dataset, split=split, resolution=resolution, protocol=protocol, results=results)
    if me is None:
        raise InputError(f"no leaderboard run of {method!r} on {dataset!r} ({split}, {resolution}, {protocol}) "
                         f"in {leaderboard_path(dataset, results)}")
    b = {}
    for name in BOUNDS:
        s = standing(name, dataset=dataset, split=split, resolution=resolution, protocol=protocol, results=results,
                     n_images=me.n_images)
        if s is None:
            raise InputError(f"the leaderboard {leaderboard_path(dataset, results)} has no run of {name!r} on "
                             f"{me.n_images} scenes of {dataset!r} ({split}, {resolution}, {protocol})")
        b[name] = s
    top, lows = b["gt-stack"], [b[n] for n in LOWER_BOUNDS]
    best_low = max((s.q for s in lows if not math.isnan(s.q)), default=math.nan)
    if math.isnan(me.q):
        where = "has no HDR-VDP-2 score"
    elif me.q > top.q:
        where = "lies above gt-stack"
    elif me.q >= best_low:
        share = 100.0 * (me.q - best_low) / (top.q - best_low) if top.q > best_low else math.nan
        where = ("lies between the single-exposure bounds and gt-stack" +
                 ("" if math.isnan(share) else f", {share:.0f} % of the way up to gt-stack"))
    elif all(me.q < s.q for s in lows if not math.isnan(s.q)):
        where = "lies below both single-exposure bounds"
    else:
        where = "lies between the two single-exposure bounds"
    es = b["exposure-scaling"].stack_psnr
    if math.isnan(me.stack_psnr):
        stack = f"{method} predicts no stack, so it has no stack PSNR (exposure-scaling {_db(es)})"
    else:
        side = "above" if me.stack_psnr > es else ("equal to" if me.stack_psnr == es else "below")
        stack = (f"its stack PSNR over the generated exposures is {_db(me.stack_psnr)}, {side} exposure-scaling's "
                 f"{_db(es)} (gt-stack's stack is exact; ldr-linear predicts no stack)")
    return (f"On {dataset} ({split} split, {me.n_images} scenes, protocol {protocol}), {method} scores HDR-VDP-2 "
            f"Q {_q(me.q)} and {where} (gt-stack {_q(top.q)}, exposure-scaling {_q(b['exposure-scaling'].q)}, "
            f"ldr-linear {_q(b['ldr-linear'].q)}); {stack}.")
