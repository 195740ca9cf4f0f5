"""Texts as token ids (``data.kind = "csv_text"``): the words, a vocabulary of the training part, padding.

Words are what scikit-learn's ``CountVectorizer().build_analyzer()`` yields: lowercased runs
of two or more letters or digits (its default ``token_pattern``), accents kept. The
vocabulary is built from the training texts only (:func:`build_vocabulary`, called by
:func:`duofit.common.data.prepare` after the split), so a word seen only in validation or
test texts is out-of-vocabulary there, as it would be for new texts.

Ids: 0 pads, 1 is out-of-vocabulary (:data:`PAD_ID`, :data:`OOV_ID`), then the training
words by frequency (most frequent first, ties in alphabetical order), at most
``data.text.max_vocab - 2`` of them, so every id is below ``max_vocab``. Each text becomes
``data.text.max_len`` ids: longer texts are cut and shorter ones padded, both at the end
(``padding = "post"``) or both at the start (``"pre"``, Keras' ``pad_sequences`` default).

Example:
    >>> import numpy as np
    >>> vocab = build_vocabulary(np.array(["a good film", "good, GOOD acting", "bad film"]), max_vocab=10)
    >>> vocab
    ('<pad>', '<oov>', 'good', 'film', 'acting', 'bad')
    >>> encode_texts(np.array(["good plot, bad acting", "film"]), vocab, max_len=3).tolist()
    [[2, 1, 5], [3, 0, 0]]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from duofit.common.data.csvfile import check_file, parse_csv
from duofit.common.errors import DataError
from duofit.common.spec import Spec

__all__ = ["OOV_ID", "PAD_ID", "build_vocabulary", "encode_texts", "read_texts", "words"]

PAD_ID = 0
OOV_ID = 1
_RESERVED = ("<pad>", "<oov>")


def _analyzer() -> Callable[[str], list[str]]:
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer: Callable[[str], list[str]] = CountVectorizer().build_analyzer()
    return analyzer


def words(texts: Sequence[str] | np.ndarray) -> list[list[str]]:
    """Each text's words (scikit-learn's ``CountVectorizer`` analyzer).

    Example:
        >>> words(["Not bad: 10/10!", "a"])
        [['not', 'bad', '10', '10'], []]
    """
    analyze = _analyzer()
    return [analyze(str(t)) for t in texts]


def build_vocabulary(texts: Sequence[str] | np.ndarray, max_vocab: int) -> tuple[str, ...]:
    """The vocabulary of ``texts``: index = id; ``<pad>``, ``<oov>``, then words by frequency.

    Raises:
        DataError: the texts hold no word (path ``data.text.column``).
    """
    counts = Counter(w for ws in words(texts) for w in ws)
    if not counts:
        raise DataError(
            f"data.text.column: the {len(texts)} training texts hold no word (words are runs of two or more "
            "letters or digits), so the vocabulary is empty; check that the column holds the texts",
            path="data.text.column",
        )
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return _RESERVED + tuple(ranked[: max_vocab - len(_RESERVED)])


def encode_texts(
    texts: Sequence[str] | np.ndarray,
    vocabulary: Sequence[str],
    max_len: int,
    padding: Literal["post", "pre"] = "post",
) -> np.ndarray:
    """Token ids ``(len(texts), max_len)``, int64: 0 pads, 1 marks a word outside ``vocabulary``."""
    index = {w: i for i, w in enumerate(vocabulary) if i >= len(_RESERVED)}
    out = np.full((len(texts), max_len), PAD_ID, dtype=np.int64)
    for row, ws in enumerate(words(texts)):
        ids = [index.get(w, OOV_ID) for w in ws]
        ids = ids[:max_len] if padding == "post" else ids[-max_len:]
        if ids:
            if padding == "post":
                out[row, : len(ids)] = ids
            else:
                out[row, max_len - len(ids) :] = ids
    return out


def read_texts(spec: Spec, *, max_cells: int, max_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The text column (an object array of ``str``), the raw target column and the text column's name.

    The texts become ids in :func:`duofit.common.data.prepare`, once the split is known.

    Raises:
        DataError: a missing or unreadable file, a missing column, missing values, a text
            column that holds numbers, more rows than ``max_cells`` allows.
    """
    d = spec.data
    assert d.text is not None  # the spec requires it for kind csv_text
    path = Path(str(d.path))
    check_file(path, max_bytes)
    frame = parse_csv(path)
    columns = [str(c) for c in frame.columns]
    for field, name in (("data.text.column", d.text.column), ("data.target", d.target)):
        if name not in columns:
            raise DataError(
                f"{field}: column {name!r} is not in {path.name}; columns are: {', '.join(columns)}", path=field
            )
    target = str(d.target)
    if target == d.text.column:
        raise DataError("data.target: the target column is the text column; name the label column", path="data.target")
    for field, name in (("data.text.column", d.text.column), ("data.target", target)):
        gaps = frame[name].isna().to_numpy()
        if gaps.any():
            raise DataError(
                f"{field}: {int(gaps.sum())} row(s) of {path.name} have no value in column {name!r} (first at line "
                f"{int(np.flatnonzero(gaps)[0]) + 2}); fill or drop them",
                path=field,
            )
    if frame[d.text.column].dtype.kind in "fiub":
        raise DataError(
            f"data.text.column: column {d.text.column!r} of {path.name} holds numbers, not text",
            path="data.text.column",
        )
    if len(frame) * d.text.max_len > max_cells:
        raise DataError(
            f"data.text.max_len: {len(frame):,} texts x {d.text.max_len} ids exceed the cap of {max_cells:,} values "
            "(duofit.common.data.MAX_DATA_ELEMENTS); use a smaller max_len",
            path="data.text.max_len",
        )
    texts = np.asarray(frame[d.text.column].astype(str).tolist(), dtype=object)
    return texts, frame[target].to_numpy(), (d.text.column,)
