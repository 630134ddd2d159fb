"""Parsing of the command line's free-form values: ``KEY=VALUE`` options, option names, device names.

One parser for each, shared by every command and by the API entry points, so that a typo gets the same
one-line "did you mean" answer whichever command received it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

from hdrbench.errors import InputError, UnknownNameError

__all__ = ["parse_key_values", "check_option_names", "parse_device", "did_you_mean"]

#: Device types accepted by ``--device`` (``cuda`` and ``mps`` may take an index: ``cuda:1``).
DEVICE_TYPES = ("cpu", "cuda", "mps")
#: Common names for a device that torch spells differently.
_DEVICE_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "metal": "mps", "apple": "mps"}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the close matches of ``name`` in ``choices``, else the known names."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f"; known: {', '.join(choices) or '(none)'}"


def parse_key_values(pairs: Iterable[str] | None, flag: str) -> dict[str, Any]:
    """``["n_train=4", "seed=1"]`` -> ``{"n_train": 4, "seed": 1}`` (ints and floats converted; ``-`` in keys
    becomes ``_``).

    Raises:
        InputError: an item without ``=`` or with an empty key, naming ``flag``.
    """
    out: dict[str, Any] = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key.replace("-", "_")] = value
    return out


def check_option_names(given: Iterable[str], accepted: Iterable[str], *, flag: str, owner: str) -> None:
    """Refuse option names that ``owner`` does not take, with close matches.

    Args:
        given: the option names received.
        accepted: the names ``owner`` takes.
        flag: the command-line option that carries them (``--dataset-option``), for the message.
        owner: what takes them (``dataset 'synthetic'``), for the message.

    Raises:
        UnknownNameError: ``unknown --dataset-option 'n_tset' for dataset 'synthetic'; did you mean 'n_test'?``.
    """
    accepted = list(accepted)
    for name in given:
        if name not in accepted:
            raise UnknownNameError(f"unknown {flag} {name!r} for {owner}" + did_you_mean(name, accepted))


def parse_device(device: Any, flag: str = "--device") -> str:
    """Check a device name without importing torch: ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Returns:
        The name, lower-cased and stripped (a ``torch.device`` is returned as its string).

    Raises:
        UnknownNameError: an unknown device type, with the likely intended one (``gpu`` -> ``cuda``).
        InputError: a malformed index (``cuda:x``, ``cpu:1``).
    """
    text = str(device).strip().lower()
    kind, sep, index = text.partition(":")
    if kind not in DEVICE_TYPES:
        hint = _DEVICE_ALIASES.get(kind)
        suffix = f"; did you mean '{hint}'?" if hint else did_you_mean(kind, DEVICE_TYPES)
        raise UnknownNameError(f"unknown {flag} {str(device)!r}{suffix} (devices: cpu, cuda, cuda:N, mps)")
    if sep and (kind == "cpu" or not re.fullmatch(r"\d+", index)):
        raise InputError(f"{flag} {str(device)!r}: expected cpu, cuda, cuda:N or mps (N a GPU index)")
    return text
