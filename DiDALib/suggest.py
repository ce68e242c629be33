"""Close names for a mistyped one (``DRUSEN`` for ``drusen``, ``resnet-18`` for ``resnet18``): case, separators
and then edit distance (``difflib``), for every message that names an unknown class or architecture. Standard
library only, so the Slicer side may use it too."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def _plain(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def close_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` that ``name`` was probably meant to be: the same but for case and separators
    first, then the closest by edit distance (difflib's ratio of at least 0.6)."""
    options = list(dict.fromkeys(choices))
    same = [c for c in options if _plain(c) == _plain(name)]
    if same:
        return same[:n]
    plain = {}
    for c in options:
        plain.setdefault(_plain(c), c)
    found = difflib.get_close_matches(_plain(name), list(plain), n=n, cutoff=0.6)
    return [plain[f] for f in found] or difflib.get_close_matches(name, options, n=n, cutoff=0.6)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'drusen'?)`` for a close name, else ``""``: to append to a message."""
    found = close_names(name, choices)
    if not found:
        return ""
    return f" (did you mean {found[0]!r}?)" if len(found) == 1 else \
        f" (did you mean {', '.join(repr(f) for f in found[:-1])} or {found[-1]!r}?)"
