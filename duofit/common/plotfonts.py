r"""Texts of a figure made drawable with the installed fonts, so a plot never warns about a glyph.

A spec name, a backend or a swept value may hold characters the default font lacks (CJK,
emoji). For each such text :func:`fit_text_to_fonts` adds installed fonts that have them as
fallbacks (matplotlib draws each glyph from the first font of the family list that has it);
characters no installed font has are left out of the text.

Example:
    >>> from duofit.common.plots import pyplot
    >>> fig = pyplot().figure()
    >>> title = fig.suptitle("loss \U0001f680")
    >>> fit_text_to_fonts(fig)
    >>> title.get_text() in ("loss", "loss \U0001f680")   # left out, or drawn from a font that has it
    True
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["fallback_fonts", "fit_text_to_fonts"]

# matplotlib bundles "Last Resort High-Efficiency", which maps every code point to a
# placeholder box: it has no real glyph, so it is never chosen as a fallback.
_NOT_A_FALLBACK = ("Last Resort",)
_LAYOUT_CHARS = frozenset("\n")  # handled by matplotlib's text layout, never looked up in a font
_SPACES = re.compile(r"[ \t]{2,}")


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    """Code points a font file has glyphs for (none for a bitmap-only font matplotlib cannot scale)."""
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path)
    except (OSError, RuntimeError, ValueError):
        return frozenset()
    return frozenset(font.get_charmap()) if font.scalable else frozenset()


@functools.cache
def _families() -> tuple[str, ...]:
    """Installed font families matplotlib can use, sorted by name."""
    from matplotlib import font_manager

    names = {entry.name for entry in font_manager.fontManager.ttflist}
    return tuple(sorted(n for n in names if not n.startswith(_NOT_A_FALLBACK)))


@contextlib.contextmanager
def _quiet_font_search() -> Iterator[None]:
    """Probing every family logs "Failed to find font weight ..." for the ones without this weight."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _font_path(props: Any, family: str) -> str | None:
    """The file matplotlib draws ``family`` from in this style and weight (the nearest weight), if installed."""
    from matplotlib import font_manager

    one = props.copy()
    one.set_family(family)
    try:
        with _quiet_font_search():
            return str(font_manager.findfont(one, fallback_to_default=False))
    except ValueError:
        return None


def _covered(props: Any, families: list[str]) -> frozenset[int]:
    charsets = [_charmap(p) for f in families if (p := _font_path(props, f)) is not None]
    return frozenset().union(*charsets)


def fallback_fonts(props: Any, chars: set[str]) -> tuple[list[str], set[str]]:
    r"""Installed families that have ``chars`` (greedy: the best-covering first), and the chars none has.

    Args:
        props: The text's ``FontProperties`` (style and weight pick the file of each family).
        chars: Characters its own fonts lack.

    Example:
        >>> from matplotlib.font_manager import FontProperties
        >>> fallback_fonts(FontProperties(), {"\U0001f680"})[1] <= {"\U0001f680"}
        True
    """
    left = set(chars)
    chosen: list[str] = []
    while left:
        best: str | None = None
        have: set[str] = set()
        for family in _families():
            if family in chosen:
                continue
            charmap = _covered(props, [family])
            found = {c for c in left if ord(c) in charmap}
            if len(found) > len(have):
                best, have = family, found
        if best is None:
            break
        chosen.append(best)
        left -= have
    return chosen, left


def _is_math(text: str) -> bool:
    """Mathtext (a pair of unescaped ``$``) is drawn with the math fonts: left as it is."""
    return text.count("$") - text.count(r"\$") >= 2


def fit_text_to_fonts(fig: Any) -> None:
    """Add fallback fonts to, or strip characters from, every text of ``fig`` the fonts cannot draw.

    Call it before anything measures or draws the texts (``tight_layout``, ``savefig``);
    :func:`duofit.common.plots.save_figure` does.
    """
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        value = text.get_text()
        if value.isascii() or _is_math(value):
            continue
        props = text.get_fontproperties()
        families = list(text.get_fontfamily())
        charmap = _covered(props, families)
        missing = {c for c in value if c not in _LAYOUT_CHARS and ord(c) not in charmap}
        if not missing:
            continue
        extra, absent = fallback_fonts(props, missing)
        if extra:
            text.set_fontfamily([*families, *extra])
        if absent:
            kept = "".join(c for c in value if c not in absent)
            text.set_text(_SPACES.sub(" ", kept).strip())
