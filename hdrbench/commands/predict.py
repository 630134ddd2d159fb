"""``hdrbench predict``: one LDR image -> its predicted exposure stack, the merged HDR image and a preview."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict the exposure stack and HDR image of one LDR image",
                       description="Run a stack method on one LDR image and write ev-3.png ... ev+3.png (8-bit), "
                                   "with --float also float32 .pfm files in [0, 1], the merged HDR image "
                                   "(hdr.hdr, hdr.exr), a tone-mapped preview.png and prediction.json (what ran).")
    p.add_argument("--method", required=True, help="a stack method: a recipe (with --weights or --checkpoint) or a "
                                                   "training-free method (see 'hdrbench methods list')")
    p.add_argument("--weights", metavar="PATH",
                   help="official weights; for proposed: a folder of the six DiffHDRsyn <step>-gu.ckpt ... "
                        "<step>-cbd.ckpt files, or a prefix DIR/<step>")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by 'hdrbench train'")
    p.add_argument("--preset", help="recipe preset that sizes the network for --weights (default: paper)")
    p.add_argument("--input", required=True, metavar="IMAGE", help="the LDR image (8/16-bit PNG, JPEG, TIFF)")
    p.add_argument("--evs", default="-3..3", help="EVs to predict: a range like -3..3 or a list like -2,0,2 "
                                                  "(must include 0; default: -3..3)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--float", dest="save_float", action="store_true",
                   help="also write the exposures as float32 .pfm in [0, 1], without quantisation")
    p.add_argument("--resize", metavar="WxH", help="resize the input first (Lanczos-4 on its integer codes)")
    p.add_argument("--hdr-format", default="hdr,exr", help="comma-separated HDR formats: hdr, exr (default: both)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdrbench.evaluate.predict import parse_evs, parse_size, predict

    evs = parse_evs(args.evs)
    resize = parse_size(args.resize) if args.resize else None
    formats = [f.strip().lower() for f in args.hdr_format.split(",") if f.strip()]
    result = predict(args.method, args.input, evs=evs, out=args.out, save_float=args.save_float, resize=resize,
                     weights=args.weights, checkpoint=args.checkpoint, preset=args.preset, device=args.device,
                     hdr_formats=formats)
    official = result.config["method"].get("official_weights")
    if official:
        print(f"official weights: step {official['step']} ({len(official['files'])} files)")
    print(f"{result.method}: {len(result.evs)} exposures of {result.config['input_size'][0]}x"
          f"{result.config['input_size'][1]} written to {args.out}")
    for f in result.files:
        print(f"  {f}")
    return 0
