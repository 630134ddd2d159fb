"""``hdrbench train``: train a recipe on a dataset (one process, or every rank under ``torchrun``)."""

from __future__ import annotations

import os


def options(pairs: list[str] | None, flag: str) -> dict:
    """``["n_train=4", "seed=1"]`` -> ``{"n_train": 4, "seed": 1}`` (see :func:`hdrbench.options.parse_key_values`)."""
    from hdrbench.options import parse_key_values

    return parse_key_values(pairs, flag)


def device_argument(text: str) -> str:
    """argparse ``type`` of ``--device``: a clear one-line error (exit 2) for ``cdua``, ``gpu``, ``cuda:x``."""
    import argparse

    from hdrbench.errors import HdrbenchError
    from hdrbench.options import parse_device

    try:
        return parse_device(text, "device")
    except HdrbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def recipe_options(pairs: list[str] | None, flag: str = "--method-option") -> dict:
    """``["fidelity=official", "loss.stack_cobi_grad=false"]`` -> dotted recipe overrides.

    Values are read as TOML values (``true``, ``8``, ``1e-4``, ``[1.0, 2.0]``, ``"text"``); anything that is
    not a TOML value is taken as a plain string (``loss.cobi_features=rgb-patch``).
    """
    import tomllib

    from hdrbench.errors import InputError

    out: dict = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE (e.g. fidelity=official), got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def add_training_arguments(p, *, method_required: bool) -> None:
    """The options ``train`` and ``run`` share (recipe, dataset, scale, device and speed switches)."""
    if method_required:
        p.add_argument("--method", required=True, help="recipe name in methods/ (see 'hdrbench methods list') "
                                                       "or a path to a recipe .toml")
        p.add_argument("--dataset", required=True, help="dataset name: photos, synthetic, vds, hdr-eye, "
                                                        "hdr-folder:PATH, stack-folder:PATH")
    else:
        p.add_argument("--method", default="proposed", help="method: a recipe (trained when needed) or a "
                                                            "training-free method (default: proposed)")
        p.add_argument("--dataset", default="photos", help="dataset name (default: photos, the embedded real "
                                                           "photographs)")
    p.add_argument("--root", help="dataset root folder (vds, hdr-eye)")
    p.add_argument("--preset", help="recipe preset: paper, cpu or tiny (default: the recipe's default_preset)")
    p.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                   help="recipe override, e.g. fidelity=corrected or loss.cobi_features=rgb-patch (dotted keys, "
                        "TOML values; repeatable)")
    p.add_argument("--iters", type=int, help="training iterations (overrides the preset's schedule.iters)")
    p.add_argument("--batch-size", type=int, help="samples per process and iteration (overrides schedule.batch_size)")
    p.add_argument("--device", default="cpu", type=device_argument,
                   help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision (default: fp32)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for networks and batches")
    p.add_argument("--compile", action="store_true", help="torch.compile every network")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and augmentation (default: 0)")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="dataset reader option, e.g. n_train=8 (repeatable)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def apply_threads(args) -> None:
    from hdrbench.errors import InputError

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a recipe on a dataset (checkpoints, exact --resume, torchrun)",
                       description="Train a recipe on a dataset's train split. The run folder is "
                                   "runs/<method>__<dataset> (or --out) with checkpoint.pt, recipe.json and "
                                   "train.log. Under torchrun every rank trains on its share of the global batch.")
    add_training_arguments(p, method_required=True)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("-o", "--out", help="run folder (default: runs/<method>__<dataset>)")
    p.add_argument("--resolution", help="dataset resolution policy (default: the card's)")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdrbench import api
    from hdrbench.train import checkpoint as ckpt
    from hdrbench.train import distributed as dist_utils

    apply_threads(args)
    if args.out:
        from hdrbench.outputs import check_output_dir

        check_output_dir(args.out, "--out")  # before the data are generated and the networks built
    try:
        path = api.train(args.method, args.dataset, root=args.root, preset=args.preset, iters=args.iters,
                         batch_size=args.batch_size, device=args.device, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile, resume=args.resume, out=args.out,
                         seed=args.seed, progress=not args.no_progress,
                         dataset_options=options(args.dataset_option, "--dataset-option"),
                         resolution=args.resolution, overrides=recipe_options(args.method_option))
        if int(os.environ.get("RANK", "0")) == 0:
            meta = ckpt.peek(path)
            state = "complete" if meta.get("complete") else "incomplete"
            print(f"checkpoint: {path} (iteration {meta.get('iteration')} of {meta.get('iters')}, {state}, "
                  f"recipe hash {meta.get('recipe_hash')})")
            print(f"log: {path.parent / 'train.log'}")
    finally:
        dist_utils.shutdown()
    return 0
