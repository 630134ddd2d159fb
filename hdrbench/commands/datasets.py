"""``hdrbench datasets``: list the dataset cards or check a dataset on disk."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list datasets or check one on disk")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    lp = dsub.add_parser("list", help="list every dataset card")
    lp.set_defaults(func=run_list)
    cp = dsub.add_parser("check", help="list every missing, unreadable or mis-sized file of a dataset")
    cp.add_argument("--dataset", required=True, help="dataset name (vds, hdr-eye, hdr-folder:PATH ...)")
    cp.add_argument("--root", help="dataset root folder")
    cp.add_argument("--split", help="check one split only (default: all)")
    cp.add_argument("--resolution", help="resolution policy (affects generated datasets only)")
    cp.set_defaults(func=run_check)


def run_list(args) -> int:
    from hdrbench.data.cards import load_card
    from hdrbench.data import list_datasets

    for name in list_datasets():
        card = load_card(name)
        arg = ":<path>" if name in ("hdr-folder", "stack-folder") else ""
        print(f"{name + arg:<20} {card.title}")
        print(f"{'':<20} EVs {', '.join(f'{e:+g}' for e in card.evs)}; splits {', '.join(card.splits)}; "
              f"resolution {card.default_resolution}")
        print(f"{'':<20} licence: {card.licence}")
        print(f"{'':<20} obtain: {card.obtain}")
        print(f"{'':<20} cite: {card.citation}")
    return 0


def run_check(args) -> int:
    from hdrbench.data import get_dataset
    from hdrbench.data.check import check_dataset, format_problems
    from hdrbench.errors import HdrbenchError

    ds = get_dataset(args.dataset, root=args.root, resolution=args.resolution)
    notes: list[str] = []
    problems = check_dataset(ds, split=args.split, notes=notes)
    for note in notes:
        print(f"note: {note}")
    if problems:
        print(format_problems(ds, problems, limit=None))
        return 1
    counts = []
    for sp in [args.split] if args.split else ds.splits:
        try:
            counts.append(f"{sp}: {len(ds.scenes(sp))}")
        except HdrbenchError:  # an absent split, reported in a note above
            continue
    counts = ", ".join(counts)
    print(f"dataset {ds.name!r} is complete ({counts} scenes)")
    return 0
