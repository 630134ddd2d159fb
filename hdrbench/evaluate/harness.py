"""The evaluation harness: one method over one dataset split -> a run folder of per-image records.

For every scene:

1. the input is the EV 0 image of the ground-truth stack (or the dataset's LDR image);
2. stack methods generate the stack at the dataset's EVs (EV -3..+3: three steps up, three down); each
   generated EV is scored against the ground-truth image at the same EV with PSNR, SSIM and MS-SSIM
   (``data_range=1``); the seven images are merged by the synthesis layer (Debevec-Malik inverse CRF
   estimated from the predicted stack, or the method's own curve, Deb97 weights, log merge, t = 2^EV);
   direct methods return HDR themselves;
3. the HDR image is scored against the dataset's ground-truth HDR (or, when the dataset has none, the
   ground-truth stack merged the same way: recorded as ``hdr_reference`` in the configuration) with the
   HDR metrics under the named protocol (default ``singlehdr``).

The protocol also declares the reference and the merge (``Protocol.hdr_reference``, ``Protocol.stack_merge``),
and this module is where both are honoured: under ``kim2021`` (the official test code's reference) every stack,
predicted or ground truth, is merged with the official synthesis layer (:data:`MERGE_LAYERS`), and every
prediction, from a stack or direct, is scored against the merged ground-truth stack (``hdr_reference``
``gt-stack-merged-official``). The scene context's reference inverse CRF is the one recovered by that merge.

Small images: SSIM needs a side >= 11 px and MS-SSIM > 160 px with the standard 11-px window. The harness
lets the metrics shrink the window to the largest odd size that fits and records it in the row's
``metric_version`` (``"1+win7"``); rows without a suffix used the standard window.

Failures are data: a scene that cannot be read, a method that raises, a NaN/Inf prediction or metric becomes
rows with ``error`` set (value NaN), one for every (target, EV, metric) the scene would have produced.

Batches: scenes are predicted (and their stacks scored) one at a time, and their HDR metrics are scored in
batches of equal image size, all HDR metrics in one call: a size's predictions wait until the batch holds as many
scenes as the memory budget allows (:func:`hdrbench.metrics.batch.batch_capacity`: the metrics' measured peak per
pixel against 80 % of the memory available on the device) or :data:`MAX_BATCH_SCENES` for the device type (16 on
CUDA, 1 on the CPU, where batches were not faster), and the rest are scored after the last scene. The values
are those of one scene at a time up to rounding (protocols and metrics work per image); a batch that raises is
scored again scene by scene and metric by metric, so a faulty scene still costs only its own rows. Records keep
the split order; the progress bar counts scenes whose rows are complete (a batch's scenes complete together).
Under ``torchrun`` each rank batches its own share.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from hdrbench import __version__
from hdrbench.data.base import Dataset, Scene, get_dataset
from hdrbench.data.check import check_dataset, empty_split_hint
from hdrbench.errors import DatasetError, InputError
from hdrbench.evaluate import distributed
from hdrbench.evaluate.methods import Method, SceneContext, get_method
from hdrbench.evaluate.records import Record
from hdrbench.evaluate.runs import Run, environment, new_run
from hdrbench.metrics.registry import DEFAULT_HDR_METRICS, DEFAULT_STACK_METRICS

STACK_METRICS: tuple[str, ...] = DEFAULT_STACK_METRICS
HDR_METRICS: tuple[str, ...] = DEFAULT_HDR_METRICS
#: Synthesis-layer settings of the ``hdrbench`` merge layer (the paper's: Deb97 weights, log merge), used for every
#: merge unless the protocol names the ``official`` layer.
MERGE_SETTINGS: dict[str, Any] = {"weight": "deb97", "merge": "log"}
#: The merge layers a protocol's ``stack_merge`` can name (see :data:`hdrbench.metrics.protocols.STACK_MERGES`).
MERGE_LAYERS: tuple[str, ...] = ("hdrbench", "official")
STANDARD_WINDOW = 11
#: At most this many scenes of one shape go through the HDR metrics as one batch, by device type (fewer when the
#: memory budget says so; 1 scores every scene alone, all HDR metrics in one call). On the CPU a batch was not
#: faster: the same at 256x256 and 1.4x slower at 512x512 than one scene at a time (docs/hdrvdp2-performance.md,
#: "Batches"), so the CPU scores scene by scene. On CUDA a batch fills the device (HDR-VDP-2's GPU throughput is
#: measured at this batch size by ``hdrbench bench hdrvdp2``); the cap bounds the predictions held while a batch
#: fills. Other device types: 1.
MAX_BATCH_SCENES: dict[str, int] = {"cpu": 1, "cuda": 16}
#: File formats ``save_hdr`` can write (see :func:`evaluate`).
SAVE_HDR_FORMATS: tuple[str, ...] = ("pfm", "exr", "hdr")


def _save_hdr(path: Path, hdr: torch.Tensor) -> None:
    """Write a (1, 3, H, W) linear HDR image (atomically, through the imaging layer)."""
    from hdrbench.imaging.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, hdr[0].detach().float().permute(1, 2, 0).cpu().numpy())


def merge_settings(layer: str = "hdrbench") -> dict[str, Any]:
    """The ``merge_stack`` keyword arguments of a merge layer (without ``inverse_crf``).

    Args:
        layer: ``hdrbench`` (:data:`MERGE_SETTINGS`) or ``official`` (``hdrbench.imaging.synthesis.OFFICIAL_LAYER``,
            the official code's ``hdrlayer(lin_type='LUT', method='Debevec')``).

    Raises:
        InputError: unknown layer.
    """
    if layer == "hdrbench":
        return dict(MERGE_SETTINGS)
    if layer == "official":
        from hdrbench.imaging.synthesis import OFFICIAL_LAYER

        return {k: v for k, v in OFFICIAL_LAYER.items() if k != "inverse_crf"}
    raise InputError(f"merge layer must be one of {', '.join(MERGE_LAYERS)}, got {layer!r}")


def merge_scene_stack(stack: torch.Tensor, evs: Sequence[float], inverse_crf: Any = "debevec", *,
                      layer: str = "hdrbench") -> Any:
    """Merge a ``(N, E, 3, H, W)`` stack with a merge layer's settings (t = 2^EV, :func:`merge_settings`).

    Args:
        inverse_crf: ``"debevec"`` (recovered from ``stack`` by the layer's calibration) or the method's own curve.
        layer: ``hdrbench`` or ``official``.

    Returns:
        The synthesis layer's ``MergeResult`` (``hdr`` (N, 3, H, W) linear relative, ``inverse_crf``).
    """
    from hdrbench.imaging.synthesis import merge_stack

    times = torch.tensor([2.0**e for e in evs], dtype=torch.float64, device=stack.device)
    return merge_stack(stack, times, inverse_crf=inverse_crf, **merge_settings(layer))


def hdr_reference_label(source: str, layer: str) -> str:
    """The configuration's ``hdr_reference`` entry: ``dataset``, ``gt-stack-merged`` (hdrbench layer) or
    ``gt-stack-merged-official``."""
    if source == "dataset":
        return "dataset"
    return "gt-stack-merged" if layer == "hdrbench" else f"gt-stack-merged-{layer}"


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


class ScoreRow(NamedTuple):
    """One scored (target, EV, metric) of a scene; failures are rows too (``value`` NaN, ``error`` set)."""

    target: str  # "stack" (one generated EV against the ground truth at that EV) or "hdr"
    ev: float  # the EV of a stack row; NaN for an HDR row
    metric: str
    value: float
    error: str  # empty when the value is valid
    metric_version: str  # the metric's version, with "+win<k>" when a smaller SSIM window was used


class _SceneResult(NamedTuple):
    """One scene's rows as a rank returns them: its index in the split, the rows, a traceback (or "")."""

    index: int
    rows: list[ScoreRow]
    traceback: str


class _SceneScorer:
    """Scores scenes: :meth:`prepare` predicts one scene, :meth:`hdr_rows` scores the HDR metrics of a batch; every
    method call and metric is isolated so that one failure costs only its rows."""

    def __init__(self, method: Method, evs: list[float], protocol, stack_metrics: Sequence[str],
                 hdr_metrics: Sequence[str], device: torch.device) -> None:
        from hdrbench.metrics.registry import get_metric

        self.method = method
        self.evs = evs
        self.protocol = protocol
        self.stack_metrics = list(stack_metrics)
        self.hdr_metrics = list(hdr_metrics)
        self.device = device
        # What the protocol declares, honoured here (the metrics layer never loads a scene).
        self.layer = protocol.stack_merge
        self.reference = protocol.hdr_reference
        self.versions = {m: get_metric(m).version for m in self.stack_metrics + self.hdr_metrics}
        self.hdr_reference_used: set[str] = set()

    def expected(self, evs: list[float] | None = None) -> list[tuple[str, float, str]]:
        """The (target, EV, metric) rows a scene produces; ``evs`` defaults to the dataset's EVs."""
        rows = []
        if self.method.kind == "stack":
            rows += [("stack", ev, m) for ev in (self.evs if evs is None else evs) if ev != 0
                     for m in self.stack_metrics]
        rows += [("hdr", math.nan, m) for m in self.hdr_metrics]
        return rows

    def failed(self, error: str, only: str | None = None, evs: list[float] | None = None) -> list[ScoreRow]:
        return [ScoreRow(t, ev, m, math.nan, error, self.versions[m]) for t, ev, m in self.expected(evs)
                if only is None or t == only]

    def _merge(self, stack: torch.Tensor, evs: list[float], inverse_crf) -> Any:
        return merge_scene_stack(stack, evs, inverse_crf, layer=self.layer)

    def prepare(self, scene: Scene) -> tuple[list[ScoreRow], tuple[torch.Tensor, torch.Tensor] | None]:
        """One scene up to its HDR metrics: predict, score the stack (stack methods), merge, check the HDR image.

        Returns:
            (rows so far, pair): the stack rows and ``pair`` = (prediction, reference), each (1, 3, H, W) linear
            relative in the reference's dtype, on the device, for :meth:`hdr_rows`; when the scene failed before
            its HDR metrics, ``rows`` are all its rows (HDR rows as errors) and ``pair`` is None.
        """
        dev = self.device
        gt_stack = scene.stack[None].to(dev) if scene.stack is not None else None
        scene_evs = [float(e) for e in scene.evs]
        ldr = scene.input[None].to(dev)
        cache: dict[str, Any] = {}

        def gt_merge():
            if "gt" not in cache:
                if gt_stack is None:
                    why = (f" (protocol {self.protocol.name} scores against the merged ground-truth stack)"
                           if self.reference == "gt-stack" else "")
                    raise InputError(f"scene {scene.name} has no ground-truth stack to merge{why}")
                cache["gt"] = self._merge(gt_stack, scene_evs, "debevec")
            return cache["gt"]

        context = SceneContext(scene=scene.name, evs=scene_evs, stack=gt_stack,
                               reference_inverse_crf=lambda: gt_merge().inverse_crf.detach())
        try:
            prediction = self._predict(ldr, scene_evs, context)
        except Exception as exc:
            return self.failed(_err(exc), evs=scene_evs), None

        rows: list[ScoreRow] = []
        if self.method.kind == "stack":
            rows += self._stack_rows(prediction, gt_stack, scene_evs)
            try:
                inverse = "debevec" if self.method.merge_crf == "estimate" else self.method.inverse_crf()
                with torch.inference_mode():
                    pred_hdr = self._merge(prediction, scene_evs, inverse).hdr
            except Exception as exc:
                return rows + self.failed("merge failed: " + _err(exc), only="hdr"), None
        else:
            pred_hdr = prediction

        try:
            pred_hdr, ref = self._checked_hdr(pred_hdr, ldr, scene, gt_merge)
        except Exception as exc:
            return rows + self.failed(_err(exc), only="hdr"), None
        return rows, (pred_hdr, ref)

    def hdr_rows(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[list[ScoreRow]]:
        """The HDR metric rows of scenes whose (prediction, reference) pairs have one shape, dtype and device.

        The pairs are scored as one batch: one ``compute_hdr_metrics`` call with every HDR metric (the protocol
        applied once); protocols and metrics work per image, so the values are those of one scene at a time up to
        rounding. If that call raises, each pair is scored again alone, one metric at a time, so a faulty scene
        (or metric) gets its own error rows and the others are scored.

        Args:
            pairs: (prediction, reference) from :meth:`prepare`, each (1, 3, H, W).

        Returns:
            One list of rows per pair (one row per HDR metric, in :attr:`hdr_metrics` order), in input order.
        """
        from hdrbench.metrics.registry import compute_hdr_metrics

        details: dict = {}
        try:
            with torch.inference_mode():
                test = pairs[0][0] if len(pairs) == 1 else torch.cat([t for t, _ in pairs])
                ref = pairs[0][1] if len(pairs) == 1 else torch.cat([r for _, r in pairs])
                values = compute_hdr_metrics(test, ref, protocol=self.protocol, metrics=self.hdr_metrics,
                                             allow_small_window=True, details=details)
            columns = {m: v.tolist() for m, v in values.items()}
        except Exception:  # find the scene(s) and metric(s) at fault: each pair alone, one metric at a time
            return [[self._one("hdr", math.nan, m, compute_hdr_metrics, t, r, protocol=self.protocol)
                     for m in self.hdr_metrics] for t, r in pairs]
        return [[self._row("hdr", math.nan, m, float(columns[m][k]), details) for m in self.hdr_metrics]
                for k in range(len(pairs))]

    def _predict(self, ldr: torch.Tensor, scene_evs: list[float], context: SceneContext) -> torch.Tensor:
        """The method's output for one (1, 3, H, W) input: a checked stack (1, E, 3, H, W) clamped to [0, 1]
        (stack methods) or the raw HDR image (direct methods, checked by :meth:`_checked_hdr`)."""
        if self.method.uses_context:
            self.method.prepare(context)
        with torch.inference_mode():
            if self.method.kind != "stack":
                return self.method.predict_hdr(ldr)
            pred_stack = self.method.predict_stack(ldr, scene_evs)
            want = (1, len(scene_evs), 3) + tuple(ldr.shape[-2:])
            if tuple(pred_stack.shape) != want:
                raise InputError(f"predict_stack returned shape {tuple(pred_stack.shape)}, expected {want}")
            if not torch.isfinite(pred_stack).all():
                raise InputError("predicted stack contains NaN or Inf")
            return pred_stack.clamp(0.0, 1.0)

    def _stack_rows(self, pred_stack: torch.Tensor, gt_stack: torch.Tensor | None,
                    scene_evs: list[float]) -> list[ScoreRow]:
        """Each generated EV (not EV 0) against the ground-truth image at the same EV, per stack metric."""
        from hdrbench.metrics.registry import compute_ldr_metrics

        rows: list[ScoreRow] = []
        for ev in scene_evs:
            if ev == 0:
                continue
            i = scene_evs.index(ev)
            for m in self.stack_metrics:
                if gt_stack is None:
                    rows.append(ScoreRow("stack", ev, m, math.nan, "dataset has no ground-truth stack",
                                         self.versions[m]))
                    continue
                rows.append(self._one("stack", ev, m, compute_ldr_metrics, pred_stack[:, i], gt_stack[:, i]))
        return rows

    def _checked_hdr(self, pred_hdr: torch.Tensor, ldr: torch.Tensor, scene: Scene,
                     gt_merge) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction clamped to >= 0 in the reference's dtype, reference) after the shape and finiteness
        checks; the reference is the dataset's HDR image or the merged ground-truth stack, as the protocol says."""
        if tuple(pred_hdr.shape) != (1, 3) + tuple(ldr.shape[-2:]):
            raise InputError(f"HDR prediction has shape {tuple(pred_hdr.shape)}, expected (1, 3, H, W)")
        if not torch.isfinite(pred_hdr).all():
            raise InputError("HDR prediction contains NaN or Inf")
        if scene.hdr is not None and self.reference == "dataset":
            ref = scene.hdr[None].to(self.device)
            self.hdr_reference_used.add("dataset")
        else:
            ref = gt_merge().hdr
            self.hdr_reference_used.add(hdr_reference_label("gt-stack", self.layer))
        return pred_hdr.clamp_min(0.0).to(ref.dtype), ref

    def _version(self, metric: str, details: dict) -> str:
        win = details.get("windows", {}).get(metric)
        v = self.versions[metric]
        return v if win in (None, STANDARD_WINDOW) else f"{v}+win{win}"

    def _one(self, target: str, ev: float, metric: str, compute: Callable[..., dict], test: torch.Tensor,
             ref: torch.Tensor, **kwargs: Any) -> ScoreRow:
        """One metric's row: ``compute`` is ``compute_ldr_metrics`` or ``compute_hdr_metrics`` (``kwargs``: the
        protocol of the latter); a raised error or a NaN value becomes the row's ``error``."""
        details: dict = {}
        try:
            val = float(compute(test, ref, metrics=[metric], allow_small_window=True, details=details,
                                **kwargs)[metric][0])
        except Exception as exc:
            return ScoreRow(target, ev, metric, math.nan, _err(exc), self.versions[metric])
        return self._row(target, ev, metric, val, details)

    def _row(self, target: str, ev: float, metric: str, val: float, details: dict) -> ScoreRow:
        """A computed value's row (a NaN value is the row's ``error``; the window goes into the version)."""
        err = "metric returned NaN" if math.isnan(val) else ""
        return ScoreRow(target, ev, metric, val, err, self._version(metric, details))


def score_scene_hdr(method: Method, scene: Scene, protocol, hdr_metrics: Sequence[str], *,
                    device: str | torch.device = "cpu") -> dict[str, ScoreRow]:
    """The HDR rows :func:`evaluate` records for one scene, without a run folder: the same predict, merge,
    reference and scoring code (:class:`_SceneScorer`), so a caller that compares against a method scores it
    exactly as the harness would.

    Args:
        method: the method (its scene context, e.g. the reference inverse CRF, is provided here as in a run).
        scene: a loaded scene (its stack, EVs and HDR image as the dataset gives them).
        protocol: a :class:`~hdrbench.metrics.protocols.Protocol` (its reference and merge layer are honoured).
        hdr_metrics: HDR metric names.
        device: evaluation device.

    Returns:
        ``{metric: ScoreRow}`` of the ``hdr`` target; a failure is a row with ``value`` NaN and ``error`` set.
    """
    scorer = _SceneScorer(method, [float(e) for e in scene.evs], protocol, (), hdr_metrics, torch.device(device))
    rows, pair = scorer.prepare(scene)
    if pair is not None:
        rows = rows + scorer.hdr_rows([pair])[0]
    return {r.metric: r for r in rows if r.target == "hdr"}


@dataclass(frozen=True)
class _Plan:
    """What :func:`evaluate` checked before scoring: device, protocol, dataset, scenes, method, caveat."""

    device: torch.device
    protocol: Any  # hdrbench.metrics.protocols.Protocol
    dataset: Dataset
    names: list[str]  # the scenes evaluated, in split order
    method: Method
    caveat: str  # "" or why the rows are not a full evaluation of a finished model


def evaluate(method: str | Method, dataset: str | Dataset, *, split: str = "test", limit: int | None = None,
             protocol: str = "singlehdr", device: str = "cpu", out: str | Path | None = None,
             root: str | Path | None = None, resolution: Any = None, dataset_options: dict | None = None,
             method_options: dict | None = None, stack_metrics: Sequence[str] = STACK_METRICS,
             hdr_metrics: Sequence[str] = HDR_METRICS, seed: int = 0, progress: bool = False,
             leaderboard: bool = True, results: str | Path | None = None, publish: bool = False,
             save_hdr: str | None = None, allow_incomplete: bool = False) -> Path:
    """Evaluate a method on a dataset split and write a run folder (and update the leaderboard).

    Under ``torchrun`` the scenes are sharded across ranks and the records gathered on rank 0, which alone
    writes; every rank returns the run folder's path.

    Stages: :func:`_prepare` (every check, before anything is computed), :func:`_open_run`,
    :func:`_score_shard` (this rank's scenes), :func:`_build_records` (rank 0, split order) and
    :func:`_write_run` (run folder, leaderboard, published records).

    Args:
        method: a method name (training-free or recipe) or a :class:`Method`.
        dataset: a dataset name (``synthetic``, ``vds``, ``hdr-folder:<path>``...) or a :class:`Dataset`.
        split: split to evaluate.
        limit: evaluate only the first ``limit`` scenes of the split (sorted order).
        protocol: HDR scaling protocol name (``singlehdr``, ``display``, ``hanji2022``...).
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        out: parent folder of the run folder (default ``runs/``).
        root, resolution, dataset_options: passed to :func:`hdrbench.data.get_dataset` for a dataset name.
        method_options: passed to :func:`hdrbench.evaluate.methods.get_method` for a method name.
        stack_metrics, hdr_metrics: metric names (metric registry).
        seed: torch seed set before each scene (methods with test-time randomness); recorded.
        progress: show a tqdm bar (rank 0).
        leaderboard: update ``results/leaderboard-<dataset>.csv``.
        results: results folder for the leaderboard (default :func:`hdrbench.paths.results_dir`).
        save_hdr: also save each scene's scored HDR image as ``<run>/hdr/<scene>.<save_hdr>`` (``"pfm"``: float32,
            lossless, so re-scoring the file reproduces the record; ``"exr"``: float32; ``"hdr"``: Radiance RGBE,
            about 1 % precision). Each rank writes the scenes it evaluated. None saves nothing.
        publish: also copy the records to ``<results>/records/<dataset slug>/<method>.records.csv`` (replacing
            the method's previous file there): the committed record set the report layer reads.
        allow_incomplete: score an incomplete or fallback checkpoint for the leaderboard anyway (its rows get a
            ``caveat``); without it such a model is refused when ``leaderboard`` is set. A ``limit`` run is
            always marked ``partial``. Published records are never made from either.

    Returns:
        The run folder.

    Raises:
        DatasetError: the dataset check found problems (all listed, with the expected layout) or the split is empty.
        UnknownNameError, InputError: bad method, dataset, protocol or metric names/options.
    """
    ranks = distributed.setup()
    try:
        plan = _prepare(method, dataset, ranks, split=split, limit=limit, protocol=protocol, device=device,
                        out=out, root=root, resolution=resolution, dataset_options=dataset_options,
                        method_options=method_options, stack_metrics=stack_metrics, hdr_metrics=hdr_metrics,
                        leaderboard=leaderboard, results=results, publish=publish, save_hdr=save_hdr,
                        allow_incomplete=allow_incomplete)
        run = _open_run(plan, ranks, out)
        scorer = _SceneScorer(plan.method, plan.dataset.evs, plan.protocol, stack_metrics, hdr_metrics, plan.device)
        t0 = time.perf_counter()
        local = _score_shard(scorer, plan, split, ranks, seed=seed, progress=progress, save_hdr=save_hdr,
                             run_path=run.path)
        gathered = distributed.gather((local, sorted(scorer.hdr_reference_used), time.perf_counter() - t0), ranks)
        if not ranks.is_main:
            return Path(run.final)

        results_in_order, refs = _in_split_order(gathered, len(plan.names))
        records = _build_records(plan, results_in_order, run, split=split, seed=seed)
        config = _run_config(plan, scorer, run, refs, split=split, limit=limit, stack_metrics=stack_metrics,
                             hdr_metrics=hdr_metrics, seed=seed, world=ranks.world, save_hdr=save_hdr)
        return _write_run(plan, run, config, records, results_in_order, split=split, world=ranks.world,
                          leaderboard=leaderboard, results=results, publish=publish)
    finally:
        distributed.teardown(ranks)


def _prepare(method: str | Method, dataset: str | Dataset, ranks: distributed.Ranks, *, split: str, limit: int | None,
             protocol: str, device: str, out: str | Path | None, root: str | Path | None, resolution: Any,
             dataset_options: dict | None, method_options: dict | None, stack_metrics: Sequence[str],
             hdr_metrics: Sequence[str], leaderboard: bool, results: str | Path | None, publish: bool,
             save_hdr: str | None, allow_incomplete: bool) -> _Plan:
    """Resolve and check everything :func:`evaluate` needs before any scene is scored (arguments as there):
    device, writable destinations (rank 0), protocol, metric names, the dataset and its split (checked once, on
    rank 0, and the verdict broadcast), the method, and whether its rows may be published."""
    from hdrbench.evaluate.trained import check_publishable
    from hdrbench.metrics.protocols import get_protocol
    from hdrbench.metrics.registry import get_metric
    from hdrbench.options import parse_device
    from hdrbench.outputs import check_output_dir
    from hdrbench.paths import results_dir, runs_dir

    dev = torch.device(parse_device(device, "device") if isinstance(device, str) else device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device 'cuda' requested but CUDA is not available")
        if dev.index is None and ranks.world > 1:
            dev = torch.device("cuda", ranks.rank % torch.cuda.device_count())
    if ranks.is_main:  # unwritable destinations fail now, not after the scoring
        check_output_dir(out if out is not None else runs_dir(), "runs folder")
        if leaderboard or publish:
            from_env = results is None and "HDRBENCH_RESULTS" in os.environ
            check_output_dir(results if results is not None else results_dir(),
                             "results folder" + (" (HDRBENCH_RESULTS)" if from_env else ""))
    proto = get_protocol(protocol)
    if save_hdr is not None and save_hdr not in SAVE_HDR_FORMATS:
        raise InputError(f"save_hdr must be one of {SAVE_HDR_FORMATS}, got {save_hdr!r}")
    for m in list(stack_metrics) + list(hdr_metrics):
        get_metric(m)
    ds = dataset if isinstance(dataset, Dataset) else get_dataset(
        dataset, root=root, resolution=resolution, **(dataset_options or {}))
    names = ds.scenes(split)
    n_split = len(names)
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be >= 1, got {limit}")
        names = names[:limit]
    partial = f"partial: {len(names)} of {n_split} scenes" if len(names) < n_split else ""
    if not names:
        hint = empty_split_hint(ds, split)
        raise DatasetError(f"dataset {ds.name!r}: split {split!r} is empty" + (hint or "; expected layout:\n"
                           f"{ds.expected_layout()}"))

    # The check runs once (rank 0), before anything is computed: a broken dataset fails here, whole.
    problems = [str(p) for p in check_dataset(ds, split=split, scenes=names)] if ranks.is_main else None
    problems = distributed.broadcast(problems, ranks)
    if problems:
        raise DatasetError(f"dataset {ds.name!r} failed its check:\n" + "\n".join(problems[:50])
                           + ("\n..." if len(problems) > 50 else "")
                           + f"\nexpected layout:\n{ds.expected_layout()}")

    meth = method if isinstance(method, Method) else get_method(method, dataset=ds.name, device=str(dev),
                                                                **(method_options or {}))
    caveat = "; ".join(c for c in (partial, check_publishable(meth, allow_incomplete or not leaderboard)) if c)
    if publish and caveat:
        raise InputError(f"refusing to publish records of {meth.name}: {caveat}; published records are full "
                         "evaluations of finished models (drop --publish-records, or --limit)")
    return _Plan(device=dev, protocol=proto, dataset=ds, names=names, method=meth, caveat=caveat)


def _open_run(plan: _Plan, ranks: distributed.Ranks, out: str | Path | None) -> Run:
    """The run folder: created by rank 0, its identity broadcast to every rank."""
    run_info = None
    if ranks.is_main:
        run = new_run(plan.method.name, plan.dataset.slug, out=out)
        run_info = (str(run.path), run.run_id, run.started, str(run.final))
    run_path, run_id, started, final_path = distributed.broadcast(run_info, ranks)
    return Run(path=Path(run_path), run_id=run_id, started=started, final=Path(final_path))


class _Waiting(NamedTuple):
    """A predicted scene whose HDR metrics wait for its batch: its slot in the shard, index in the split, stack
    rows and (prediction, reference) pair."""

    slot: int
    index: int
    rows: list[ScoreRow]
    pair: tuple[torch.Tensor, torch.Tensor]


def _score_shard(scorer: _SceneScorer, plan: _Plan, split: str, ranks: distributed.Ranks, *, seed: int, progress: bool,
                 save_hdr: str | None, run_path: Path) -> list[_SceneResult]:
    """Score this rank's share of the scenes, in shard order (a scene that cannot be loaded becomes failed rows
    with its traceback); saves each scored HDR image when ``save_hdr`` is set.

    Scenes are predicted one at a time; their HDR metrics are scored in batches of equal shape
    (:meth:`_SceneScorer.hdr_rows`). A shape's batch is scored when it holds :func:`_batch_capacity` scenes
    (the memory budget of :mod:`hdrbench.metrics.batch`, at most :data:`MAX_BATCH_SCENES` for the device), the
    rest after the last scene. The progress bar counts scenes whose rows are complete.
    """
    mine = distributed.shard(plan.names, ranks)
    local: list[_SceneResult | None] = [None] * len(mine)
    waiting: dict[tuple, list[_Waiting]] = {}
    budget = _memory_budget(plan.device)
    bar = None
    if progress and ranks.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"{plan.method.name} on {plan.dataset.name} ({split})", unit="scene",
                   file=sys.stderr)

    def done(slot: int, result: _SceneResult) -> None:
        local[slot] = result
        if bar is not None:
            bar.update(1)

    def flush(key: tuple) -> None:
        batch = waiting.pop(key, [])
        if not batch:
            return
        for w, hdr in zip(batch, scorer.hdr_rows([w.pair for w in batch])):
            done(w.slot, _SceneResult(w.index, w.rows + hdr, ""))

    for slot, (idx, name) in enumerate(mine):
        torch.manual_seed(seed)
        try:
            scene = plan.dataset.load(split, name)
        except Exception as exc:
            done(slot, _SceneResult(idx, scorer.failed("could not load scene: " + _err(exc)), traceback.format_exc()))
            continue
        rows, pair = scorer.prepare(scene)
        if pair is None:
            done(slot, _SceneResult(idx, rows, ""))
            continue
        if save_hdr is not None:
            _save_hdr(Path(run_path) / "hdr" / f"{name}.{save_hdr}", pair[0])
        test = pair[0]
        key = (tuple(test.shape), test.dtype, test.device)
        waiting.setdefault(key, []).append(_Waiting(slot, idx, rows, pair))
        if len(waiting[key]) >= _batch_capacity(scorer, test, budget):
            flush(key)
        elif bar is not None:
            bar.set_postfix_str(f"{sum(len(b) for b in waiting.values())} awaiting HDR metrics", refresh=False)
    for key in list(waiting):
        flush(key)
    if bar is not None:
        bar.close()
    return local  # type: ignore[return-value]  # every slot is filled above


def _memory_budget(device: torch.device) -> int | None:
    """Bytes one batch of HDR metrics may plan to use on ``device`` (:func:`hdrbench.metrics.batch.memory_limit_bytes`:
    80 % of the memory available; None where unknown)."""
    from hdrbench.metrics.batch import memory_limit_bytes

    try:
        return memory_limit_bytes(device=device)[0]
    except (RuntimeError, OSError):  # no figure from the system or the CUDA driver: batches are capped by count alone
        return None


def _batch_capacity(scorer: _SceneScorer, test: torch.Tensor, budget: int | None) -> int:
    """Scenes of ``test``'s shape and dtype per batch of HDR metrics: what the memory budget allows by the metrics'
    measured peak per pixel (:func:`hdrbench.metrics.batch.batch_capacity`), at most :data:`MAX_BATCH_SCENES` of
    the device type."""
    from hdrbench.metrics.batch import batch_capacity

    return batch_capacity(scorer.hdr_metrics, test.shape[-2], test.shape[-1], test.dtype, budget,
                          max_pairs=MAX_BATCH_SCENES.get(test.device.type, 1))


def _in_split_order(gathered: list, n_scenes: int) -> tuple[list[_SceneResult], set[str]]:
    """Every rank's scene results (as gathered on rank 0) in split order, and the HDR references they used."""
    by_index: dict[int, _SceneResult] = {}
    refs: set[str] = set()
    for part, used, _ in gathered:
        refs.update(used)
        for result in part:
            by_index[result.index] = result
    return [by_index[idx] for idx in range(n_scenes)], refs


def _build_records(plan: _Plan, results_in_order: list[_SceneResult], run: Run, *, split: str,
                   seed: int) -> list[dict]:
    """The run's records (CSV rows, :class:`Record` columns) in split order, one per scored row."""
    meth, ds, proto = plan.method, plan.dataset, plan.protocol
    records = []
    for name, result in zip(plan.names, results_in_order):
        for row in result.rows:
            is_hdr = row.target == "hdr"
            records.append(Record(
                run_id=run.run_id, method=meth.name, recipe_hash=meth.recipe_hash, dataset=ds.name, split=split,
                scene=name, target=row.target, ev=row.ev, metric=row.metric, value=row.value, error=row.error,
                protocol=proto.name if is_hdr else "", protocol_version=proto.version if is_hdr else "",
                metric_version=row.metric_version, resolution=ds.resolution.policy, seed=seed,
                hdrbench_version=__version__, torch_version=torch.__version__, timestamp=run.started,
            ).as_row())
    return records


def _run_config(plan: _Plan, scorer: _SceneScorer, run: Run, refs: set[str], *, split: str, limit: int | None,
                stack_metrics: Sequence[str], hdr_metrics: Sequence[str], seed: int, world: int,
                save_hdr: str | None) -> dict[str, Any]:
    """The run folder's ``config.json``: everything needed to reproduce the run."""
    from hdrbench.metrics.registry import get_metric

    meth, proto = plan.method, plan.protocol
    return {
        "run_id": run.run_id, "method": meth.config(), "dataset": plan.dataset.describe(), "split": split,
        "limit": limit, "scenes": plan.names, "protocol": {"name": proto.name, "version": proto.version,
                                                           "parameters": proto.parameters()},
        "stack_metrics": {m: get_metric(m).version for m in stack_metrics},
        "hdr_metrics": {m: get_metric(m).version for m in hdr_metrics},
        "merge": {**merge_settings(scorer.layer), "layer": scorer.layer, "exposure_times": "2**EV",
                  "inverse_crf": meth.merge_crf},
        "hdr_reference": sorted(refs) or ["dataset"],
        "small_window_policy": "largest odd window that fits; recorded as '+win<k>' in metric_version",
        "device": str(plan.device), "world_size": world, "seed": seed, "resolution": plan.dataset.resolution.policy,
        "saved_hdr": f"hdr/<scene>.{save_hdr}" if save_hdr else None,
        "command": sys.argv, "caveat": plan.caveat,
    }


def _write_run(plan: _Plan, run: Run, config: dict, records: list[dict], results_in_order: list[_SceneResult], *,
               split: str, world: int, leaderboard: bool, results: str | Path | None, publish: bool) -> Path:
    """Write the run folder (config, environment, records, log with every failure), update the leaderboard,
    publish the records if asked, and only then move the run folder to its final name (returned)."""
    meth, ds = plan.method, plan.dataset
    log = run.logger()
    run.write_json("config.json", config)
    run.write_json("environment.json", environment(str(plan.device)))
    run.write_records(records)
    n_err = sum(1 for r in records if r["error"])
    log.info("evaluated %s on %s/%s: %d scenes, %d records, %d failed, %d ranks", meth.name, ds.name, split,
             len(plan.names), len(records), n_err, world)
    for name, result in zip(plan.names, results_in_order):
        for e in sorted({row.error for row in result.rows if row.error}):
            log.warning("scene %s: %s", name, e)
        if result.traceback:
            log.warning("scene %s traceback:\n%s", name, result.traceback)
    if leaderboard:
        from hdrbench.evaluate.leaderboard import update_leaderboard

        lb = update_leaderboard(records, dataset=ds.name, results=results, caveat=plan.caveat)
        log.info("leaderboard updated: %s", lb)
    if publish:
        published = publish_records(records, dataset_slug=ds.slug, method=meth.name, results=results,
                                    protocol=plan.protocol.name)
        log.info("records published: %s", published)
    return run.finish()  # only now does the run folder appear under its name


#: Records evaluated under this protocol are published as ``<method>.records.csv``; others get a suffix.
DEFAULT_PUBLISHED_PROTOCOL = "singlehdr"


def published_records_path(dataset_slug: str, method: str, results: str | Path | None = None,
                           protocol: str = DEFAULT_PUBLISHED_PROTOCOL) -> Path:
    """``<results>/records/<dataset slug>/<method>.records.csv`` (``<method>--<protocol>.records.csv`` for a
    protocol other than the default, so that evaluations under several protocols sit side by side).

    The ``.records.csv`` suffix is what :func:`hdrbench.report.records_io.read_records` collects when given a
    folder, so ``hdrbench tables --records results/records`` reads every published file.
    """
    from hdrbench.evaluate.runs import _safe
    from hdrbench.paths import results_dir

    stem = _safe(method) if protocol == DEFAULT_PUBLISHED_PROTOCOL else f"{_safe(method)}--{_safe(protocol)}"
    return Path(results or results_dir()) / "records" / dataset_slug / f"{stem}.records.csv"


def publish_records(records: list[dict], *, dataset_slug: str, method: str,
                    results: str | Path | None = None, protocol: str = DEFAULT_PUBLISHED_PROTOCOL) -> Path:
    """Write one run's records to the published record set (atomically; replaces the older file of the same
    method and protocol)."""
    from hdrbench.evaluate.runs import write_records_csv

    return write_records_csv(published_records_path(dataset_slug, method, results, protocol), records)
