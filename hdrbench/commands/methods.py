"""``hdrbench methods``: list methods or show one."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("methods", help="list methods (training-free and trained recipes) or show one")
    msub = p.add_subparsers(dest="methods_command", metavar="ACTION", required=True)
    lp = msub.add_parser("list", help="list every method")
    lp.set_defaults(func=run_list)
    sp = msub.add_parser("show", help="describe one method")
    sp.add_argument("name")
    sp.set_defaults(func=run_show)


def run_list(args) -> int:
    from hdrbench.evaluate.methods import METHODS, is_training_free, list_methods

    names = list_methods()
    width = max(len(n) for n in names) + 2
    for name in names:
        if is_training_free(name):
            cls = METHODS.get(name)
            first = (cls.__doc__ or "").strip().splitlines()[0]
            print(f"{name:<{width}}training-free, {cls.kind:<6} {first}")
        else:
            print(f"{name:<{width}}trained recipe (methods/{name}.toml)")
    return 0


def run_show(args) -> int:
    from hdrbench.evaluate.methods import describe_method

    print(describe_method(args.name))
    return 0
