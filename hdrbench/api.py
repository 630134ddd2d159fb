"""Public entry points: train a recipe, or run a method end to end (train if needed, evaluate, leaderboard).

    from hdrbench import api
    api.run("proposed", "synthetic", preset="cpu")     # trains once, then evaluates and updates the leaderboard
    api.train("proposed", "vds", root="/data/vds", preset="paper", device="cuda", amp="bf16")

The command line (``hdrbench run`` / ``hdrbench train``) calls these functions and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

def train(
    method: str,
    dataset: Any = "synthetic",
    *,
    root: str | os.PathLike | None = None,
    preset: str | None = None,
    iters: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    resume: bool = False,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    dataset_options: dict[str, Any] | None = None,
    resolution: Any = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Train recipe ``method`` on ``dataset``; return the final checkpoint path.

    See :func:`hdrbench.train.trainer.train` for every argument; ``dataset`` is a dataset name or object.
    ``dataset_options`` (reader options such as ``n_train`` for ``synthetic``) and ``resolution`` (the
    reader's resolution policy) are passed to :func:`hdrbench.data.get_dataset` when ``dataset`` is a name.
    ``overrides`` are recipe overrides (``{"fidelity": "corrected", "loss.cobi_features": "rgb-patch"}``).
    """
    from hdrbench.train.trainer import train as _train

    if isinstance(dataset, str) and (dataset_options or resolution is not None):
        from hdrbench.data import get_dataset

        dataset = get_dataset(dataset, root=root, resolution=resolution, **dict(dataset_options or {}))
    return _train(method, dataset, root=root, preset=preset, iters=iters, batch_size=batch_size, device=device,
                  amp=amp, channels_last=channels_last, compile=compile, resume=resume, out=out, seed=seed,
                  progress=progress, overrides=overrides)


@dataclass
class RunResult:
    """What :func:`run` did.

    Attributes:
        method: method name.
        dataset: dataset name.
        checkpoint: the checkpoint evaluated (None for training-free methods; the weights path for official
            weights).
        trained: ``"no"`` (a checkpoint of this configuration existed), ``"fresh"``, ``"resumed"`` or
            ``"weights"`` (official weights evaluated, nothing trained).
        run_dir: the evaluation run folder (records, configuration, log).
        placement: one sentence placing the method between the training-free bounds (``gt-stack``,
            ``exposure-scaling``, ``ldr-linear``) for HDR-VDP-2 and stack PSNR; None when not computed.
        bounds_evaluated: the bounds evaluated by this call because the leaderboard lacked them.
    """

    method: str
    dataset: str
    checkpoint: Path | None
    trained: str
    run_dir: Path
    placement: str | None = None
    bounds_evaluated: tuple[str, ...] = ()


def existing_checkpoint(recipe, dataset_name: str, out: str | os.PathLike | None = None, *,
                        seed: int | None = None, dataset: Any = None) -> tuple[str, Path | None]:
    """Whether a checkpoint of exactly this configuration exists for this dataset.

    The configuration is :func:`hdrbench.train.trainer.training_identity`: the resolved recipe, the dataset
    and its options (``dataset``'s ``describe()``: resolution, ``n_train``...) and ``seed``; a checkpoint
    of another configuration is never reused. Without ``dataset`` or ``seed`` (older callers) only the
    recipe hash and, when given, the seed are compared.

    Returns:
        ``("complete", path)`` for a finished run of the same configuration; ``("partial", path)`` for a
        checkpoint of the same configuration apart from the schedule length that stopped before the
        recipe's ``iters`` (an unfinished run, or a finished shorter one that ``resume`` extends exactly);
        ``("missing", None)`` otherwise.
    """
    from hdrbench.train import checkpoint as ckpt
    from hdrbench.train.trainer import dataset_identity, resume_key, run_dir_for, training_identity

    identity = (training_identity(recipe, dataset_identity(dataset, dataset_name), seed)
                if dataset is not None and seed is not None else None)

    def same_run(meta: dict) -> bool:
        if identity is not None:
            return meta.get("identity") == identity
        # A run with another seed is another training run (weights, data order), never this one.
        return seed is None or int(meta.get("seed", seed)) == int(seed)

    run_dir = run_dir_for(recipe.name, dataset_name, out)
    latest = ckpt.latest(run_dir)
    kept = sorted(run_dir.glob(f"checkpoint-{identity}-it*.pt")) if identity else []
    for path in ([latest] if latest else []) + kept:
        meta = ckpt.peek(path)
        if meta.get("recipe_hash") == recipe.hash and meta.get("complete") and same_run(meta):
            return "complete", path
    if latest is not None:
        meta = ckpt.peek(latest)
        total = int(recipe.section("schedule").get("iters", 0))
        if (resume_key(meta.get("recipe", {})) == resume_key(recipe) and int(meta.get("iteration", 0)) < total
                and same_run(meta)):
            return "partial", latest
    return "missing", None


def run(method: str = "proposed", dataset: str = "photos", *, root: str | os.PathLike | None = None,
        preset: str | None = None, iters: int | None = None, batch_size: int | None = None, device: str = "cpu",
        amp: str | None = None, channels_last: bool = False, compile: bool = False, seed: int = 0,
        retrain: bool = False, split: str = "test", limit: int | None = None, protocol: str = "singlehdr",
        train_out: str | os.PathLike | None = None, eval_out: str | os.PathLike | None = None,
        leaderboard: bool = True, progress: bool = True, overrides: dict[str, Any] | None = None,
        weights: str | os.PathLike | None = None, bounds: bool = True, **evaluate_options: Any) -> RunResult:
    """Train ``method`` on ``dataset`` when no checkpoint of that configuration exists, then evaluate it.

    A recipe (``methods/<name>.toml``) is resolved with ``preset`` (default: the recipe's default preset)
    and the ``iters`` / ``batch_size`` overrides; its hash decides whether the run folder's checkpoint can
    be used as it is, resumed (same configuration, unfinished) or must be trained afresh. Training-free
    methods (``gt-stack``, ``ldr-linear``...) are evaluated directly.

    Args:
        method: recipe or training-free method name.
        dataset: dataset name (``synthetic``, ``vds``, ``hdr-folder:<path>``...).
        root: dataset root folder.
        preset, iters, batch_size, device, amp, channels_last, compile, seed: training settings
            (:func:`hdrbench.train.trainer.train`).
        retrain: train afresh even when a finished checkpoint exists.
        split, limit, protocol: evaluation settings (:func:`hdrbench.evaluate.harness.evaluate`).
        train_out: run folder for training (default ``runs/<method>__<dataset-slug>``).
        eval_out: parent folder of the evaluation run folder (default ``runs/``).
        leaderboard: update ``<results>/leaderboard-<dataset>.csv`` (the user results folder unless
            ``results`` says otherwise).
        progress: progress bars.
        overrides: recipe overrides (``{"fidelity": "corrected"}``), part of the recipe hash; for a
            training-free method they are its method options.
        weights: evaluate the recipe's network from official weights instead of training it (for ``proposed``:
            the folder or ``DIR/<step>`` prefix of the six DiffHDRsyn checkpoints; ``preset`` sizes the network,
            default ``paper``).
        bounds: with ``leaderboard``, evaluate the training-free bounds (``gt-stack``, ``exposure-scaling``,
            ``ldr-linear``) on the same dataset, split, resolution and protocol when the leaderboard lacks them,
            and place the method between them (``RunResult.placement``). Not done for the bounds themselves.
        **evaluate_options: further keyword arguments of ``evaluate`` (``stack_metrics``, ``hdr_metrics``,
            ``resolution``, ``dataset_options``, ``results``, ``publish``...).
    """
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.harness import evaluate
    from hdrbench.evaluate.methods import is_training_free

    dataset_options = dict(evaluate_options.pop("dataset_options", None) or {})
    # One dataset object serves training (train split), evaluation (test split) and the bounds.
    ds = get_dataset(dataset, root=root, resolution=evaluate_options.pop("resolution", None), **dataset_options)

    def finish(result: RunResult) -> RunResult:
        from hdrbench.evaluate.bounds import BOUNDS

        if not (bounds and leaderboard) or result.method in BOUNDS:
            return result
        done, sentence = _place(result.method, ds, result.run_dir, split=split, limit=limit, protocol=protocol,
                                device=device, eval_out=eval_out, seed=seed, progress=progress,
                                evaluate_options=evaluate_options)
        return RunResult(result.method, result.dataset, result.checkpoint, result.trained, result.run_dir,
                         sentence, done)

    if is_training_free(method):
        if weights is not None:
            from hdrbench.errors import InputError

            raise InputError(f"method {method!r} is training-free: it takes no --weights")
        if overrides:
            evaluate_options["method_options"] = {**dict(evaluate_options.get("method_options") or {}),
                                                  **dict(overrides)}
        path = evaluate(method, ds, split=split, limit=limit, protocol=protocol, device=device, out=eval_out,
                        seed=seed, progress=progress, leaderboard=leaderboard, **evaluate_options)
        return finish(RunResult(method, ds.name, None, "no", Path(path)))

    from hdrbench.evaluate.trained import load_trained_method

    if weights is not None:
        if retrain or iters is not None or batch_size is not None:
            from hdrbench.errors import InputError

            raise InputError("official weights are evaluated as they are: --weights excludes --retrain, --iters "
                             "and --batch-size")
        meth = load_trained_method(method, dataset=None, device=device, preset=preset, weights=weights)
        run_dir = evaluate(meth, ds, split=split, limit=limit, protocol=protocol, device=device, out=eval_out,
                           seed=seed, progress=progress, leaderboard=leaderboard, **evaluate_options)
        return finish(RunResult(method, ds.name, Path(weights), "weights", Path(run_dir)))

    recipe, path, trained = _train_unless_done(method, ds, preset=preset, iters=iters, batch_size=batch_size,
                                               overrides=overrides, retrain=retrain, train_out=train_out, seed=seed,
                                               device=device, amp=amp, channels_last=channels_last,
                                               compile=compile, progress=progress)
    meth = load_trained_method(recipe.name, dataset=ds.name, device=device, checkpoint=path)
    run_dir = evaluate(meth, ds, split=split, limit=limit, protocol=protocol, device=device, out=eval_out,
                       seed=seed, progress=progress, leaderboard=leaderboard, **evaluate_options)
    return finish(RunResult(recipe.name, ds.name, Path(path), trained, Path(run_dir)))


def _train_unless_done(method: str, ds, *, preset: str | None, iters: int | None, batch_size: int | None,
                       overrides: dict[str, Any] | None, retrain: bool, train_out: str | os.PathLike | None,
                       seed: int, device: str, amp: str | None, channels_last: bool, compile: bool,
                       progress: bool) -> tuple[Any, Path, str]:
    """(resolved recipe, checkpoint, how it was obtained: ``no``/``resumed``/``fresh``) for :func:`run`: the
    run folder's finished checkpoint of this configuration, else a resumed or fresh training run."""
    from hdrbench.train.recipes import load_recipe
    from hdrbench.train.trainer import train as _train

    overrides = dict(overrides or {})
    if iters is not None:
        overrides["schedule.iters"] = iters
    if batch_size is not None:
        overrides["schedule.batch_size"] = batch_size
    recipe = load_recipe(method, preset=preset, overrides=overrides)
    status, path = (("missing", None) if retrain
                    else existing_checkpoint(recipe, ds.name, train_out, seed=seed, dataset=ds))
    trained = "no"
    if status != "complete":
        path = _train(recipe, ds, device=device, amp=amp, channels_last=channels_last, compile=compile,
                      resume=status == "partial", out=train_out, seed=seed, progress=progress)
        trained = "resumed" if status == "partial" else "fresh"
    return recipe, path, trained


def _place(method: str, ds, run_dir: Path, *, split: str, limit: int | None, protocol: str, device: str,
           eval_out, seed: int, progress: bool, evaluate_options: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """Evaluate the bounds the leaderboard lacks (same dataset object, split, limit, protocol, metrics, results
    folder) and return (the bounds evaluated, the placement sentence)."""
    import json

    from hdrbench.evaluate.bounds import missing_bounds, placement
    from hdrbench.evaluate.harness import evaluate

    results = evaluate_options.get("results")
    n_images = len(json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))["scenes"])
    todo = missing_bounds(dataset=ds.name, split=split, resolution=ds.resolution.policy, protocol=protocol,
                          n_images=n_images, results=results)
    for name in todo:
        if progress:
            print(f"evaluating the bound {name} on {ds.name} ({split}, {protocol}): the leaderboard lacks it")
        evaluate(name, ds, split=split, limit=limit, protocol=protocol, device=device, out=eval_out, seed=seed,
                 progress=progress, leaderboard=True, **evaluate_options)
    sentence = placement(method, dataset=ds.name, split=split, resolution=ds.resolution.policy, protocol=protocol,
                         results=results)
    return tuple(todo), sentence


def crf_study(dataset: str, *, out: str | os.PathLike, root: str | os.PathLike | None = None, split: str = "test",
              limit: int | None = None, methods: tuple[str, ...] | list[str] = (), device: str = "cpu") -> list[Path]:
    """The CRF-consistency study (paper appendix A, Fig. 3): estimate the curves, then write table and figure.

    :func:`hdrbench.evaluate.crf_study.run_crf_study` writes ``<out>/tables/crf_study_<slug>_curves.csv``;
    :func:`hdrbench.report.crf_study.write_report` writes the spread table and the figure from those curves.
    Returns every file written.
    """
    from hdrbench.evaluate.crf_study import run_crf_study
    from hdrbench.report.crf_study import write_report

    out = Path(out)
    curves, curve_path = run_crf_study(dataset, out=out, root=root, split=split, limit=limit, methods=methods,
                                       device=device)
    return [curve_path, *write_report(curves, out, dataset)]
