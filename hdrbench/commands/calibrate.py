"""``hdrbench calibrate``: recover a stack's inverse camera response, or run the CRF-consistency study.

    hdrbench calibrate --stack path/to/memorial --out curve.csv --plot curve.png
    hdrbench calibrate --stack a.png b.png c.png --evs -2,0,2 --method mitsunaga-nayar --order 3
    hdrbench calibrate --study --dataset vds --limit 20 --out results

The curve CSV has one row per 8-bit code: ``code, z`` (= code / 255) and the linear relative irradiance
of each channel (``r, g, b``), with the recovery's normalisation (see ``hdrbench.imaging.calibration``).
With ``--study`` the command runs :func:`hdrbench.api.crf_study`.
"""

from __future__ import annotations

import argparse

from hdrbench.commands.merge import add_stack_arguments, check_stack_usable, load_stack, report_curve, resolve_stack
from hdrbench.errors import InputError

METHODS = ("debevec", "mitsunaga-nayar")
CHANNELS = ("r", "g", "b")
#: Image formats of --plot (matplotlib's writers that need no extra package).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="recover the inverse camera response of an exposure stack (or run the CRF study)",
        description="Recover the inverse camera response (per channel) of an LDR exposure stack with Debevec-Malik"
        " or Mitsunaga-Nayar, or with --study run the CRF-consistency study of the paper's appendix A on a dataset.",
    )
    add_stack_arguments(p)
    p.add_argument("--method", choices=METHODS, default="debevec", help="recovery method (default %(default)s)")
    p.add_argument("-o", "--out", default=None,
                   help="curve CSV to write (default: print a summary only); with --study the output folder"
                   " (default results)")
    p.add_argument("--plot", default=None, help="also plot the curves to this image file (.png, .pdf, .svg, .jpg)")
    study = p.add_argument_group("CRF-consistency study (--study)")
    study.add_argument("--study", action="store_true", help="run the study over a dataset split instead")
    study.add_argument("--dataset", default=None, help="dataset name (see `hdrbench datasets`)")
    study.add_argument("--root", default=None, help="dataset root folder")
    study.add_argument("--split", default="test", help="dataset split (default %(default)s)")
    study.add_argument("--limit", type=int, default=None, help="use at most this many scenes")
    p.set_defaults(func=main)


def recover(stack, seconds, args):
    """``(N, C, 256)`` inverse CRF table of ``stack`` with the method and options in ``args``."""
    from hdrbench.imaging.calibration import debevec_inverse_crf, mitsunaga_nayar_inverse_crf

    if args.method == "debevec":
        return debevec_inverse_crf(stack, seconds, smoothing=args.smoothing, n_samples=args.samples,
                                   sampling=args.sampling)
    return mitsunaga_nayar_inverse_crf(stack, seconds, order=args.order, n_samples=args.samples,
                                       sampling=args.sampling).table


def curve_csv(table) -> str:
    """CSV text of a ``(C, 256)`` table: ``code,z,<channel>...``."""
    c = table.shape[0]
    names = CHANNELS if c == 3 else tuple(f"c{i}" for i in range(c))
    lines = [",".join(("code", "z") + names)]
    for k in range(table.shape[1]):
        values = ",".join(f"{float(table[i, k]):.9g}" for i in range(c))
        lines.append(f"{k},{k / (table.shape[1] - 1):.9g},{values}")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    if args.study:
        if args.stack:
            raise InputError("--study runs over a dataset; do not combine it with --stack")
        from hdrbench import api
        from hdrbench.outputs import check_output_dir

        if not args.dataset:
            raise InputError("--study needs --dataset NAME")
        out = args.out or "results"
        check_output_dir(out, "--out")
        for path in api.crf_study(args.dataset, out=out, root=args.root, split=args.split or "test", limit=args.limit):
            print(path)
        return 0
    if args.dataset:
        raise InputError("--dataset is only used with --study")
    from hdrbench.atomic import atomic_write_text
    from hdrbench.outputs import check_output_file

    # Destinations are checked before the stack is read and the curve solved.
    if args.out:
        check_output_file(args.out, "--out", suffixes=(".csv", ".txt"))
    if args.plot:
        check_output_file(args.plot, "--plot", suffixes=PLOT_SUFFIXES)
    files, seconds = resolve_stack(args.stack, args.times, args.evs)
    stack = load_stack(files)
    check_stack_usable(stack, args.method, args.order)
    table = recover(stack, seconds, args)[0]
    report_curve(table, args.method)
    lo, mid, hi = (table[:, k].tolist() for k in (0, 128, 255))
    print(f"{args.method}: {len(files)} exposures; g(0) = {lo}, g(128/255) = {mid}, g(1) = {hi}")
    if args.out:
        atomic_write_text(args.out, curve_csv(table))
        print(f"curve -> {args.out}")
    if args.plot:
        from hdrbench.report.figures import inverse_crf_plot

        print(f"plot -> {inverse_crf_plot(args.plot, table, f'{args.method} inverse CRF')}")
    return 0
