"""CSV input that is broken in the ways shared files are: a clear DataError, or finite arrays.

Complements ``tests/common/test_bad_input.py`` (which covers a missing target column, a text
feature column, an empty cell, an empty file, a header-only file, a missing file, a single class,
unknown feature names, output units vs classes, BCE on three classes, a continuous target for a
classifier and a text target for a regression). Here: missing-value markers and gaps in the
target, infinities and values that overflow standardization, more subtle non-numeric columns,
whitespace/BOM-only files, ragged rows (short, long, and *every* row one field longer than the
header, which pandas silently turns into an index and so shifts every feature), duplicate
column names, repeated feature names, compressed and special files, size caps, a class that
ends up alone in the training split, and a hypothesis property: whatever the cells hold,
``load_dataset`` raises a ``DataError`` that names its field or returns finite arrays with one
row per data line -- never a silent NaN.

"More features than the model expects" cannot be written in a spec: the model's input width is
taken from the data (``Dataset.n_features``), so the only way a row carries more features than
the model is built for is a row with more fields than the header -- tested below.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import duofit
from duofit import DataError
from duofit.common import data as data_module
from duofit.common.data import Dataset, load_dataset

# Property-test examples: each writes and loads a small CSV (~5 ms), so 300 take a few seconds.
CSV_EXAMPLES = 300


def _doc(path: Path, loss: str = "binary_crossentropy", units: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "data": {"kind": "csv", "path": str(path), "target": "y", **data},
        "model": {"layers": [{"type": "dense", "units": units}]},
        "loss": {"type": loss},
    }


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(n: int = 20, classes: int = 2) -> list[str]:
    return [f"{i},{2 * i},{i % classes}" for i in range(n)]


def _data_error(doc: dict[str, Any]) -> DataError:
    spec = duofit.load_spec(doc)
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    exc = info.value
    assert type(exc) is DataError
    assert exc.path and exc.path in str(exc), f"path {exc.path!r} not named in: {exc}"
    return exc


def _assert_finite(ds: Dataset) -> None:
    for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        arr = np.asarray(getattr(ds, name), dtype=np.float64)
        assert np.isfinite(arr).all(), f"{name} holds NaN/inf"


# --------------------------------------------------------------------------- missing values
@pytest.mark.parametrize("marker", ["", "NA", "nan", "NaN", "null", "N/A", "#N/A"])
def test_missing_marker_in_target(tmp_path: Path, marker: str) -> None:
    rows = _rows()
    rows[3] = f"3,6,{marker}"
    exc = _data_error(_doc(_write(tmp_path / "t.csv", ["a,b,y", *rows])))
    msg = str(exc)
    assert exc.path == "data.path" and "missing values" in msg and "line 5" in msg and "y" in msg


@pytest.mark.parametrize("marker", ["NA", "nan", "null"])
def test_missing_marker_in_feature_names_the_column(tmp_path: Path, marker: str) -> None:
    rows = _rows()
    rows[10] = f"10,{marker},0"
    exc = _data_error(_doc(_write(tmp_path / "f.csv", ["a,b,y", *rows])))
    assert "line 12" in str(exc) and "columns with gaps: b" in str(exc)


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_infinite_feature(tmp_path: Path, value: str) -> None:
    rows = _rows()
    rows[4] = f"{value},8,0"
    exc = _data_error(_doc(_write(tmp_path / "inf.csv", ["a,b,y", *rows])))
    assert "infinite" in str(exc) or "non-numeric" in str(exc)


def test_infinite_regression_target(tmp_path: Path) -> None:
    rows = [f"{i},{2 * i},{0.5 * i}" for i in range(20)]
    rows[2] = "2,4,inf"
    exc = _data_error(_doc(_write(tmp_path / "r.csv", ["a,b,y", *rows]), loss="mse"))
    assert exc.path == "data.target" and "infinite" in str(exc)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the scaler's own overflow warning
def test_values_that_overflow_standardization(tmp_path: Path) -> None:
    # finite, but the scaler's variance of +-1e308 is inf: the scaled column would be NaN/0
    rows = [f"{(-1) ** i * 1e308},{i},{i % 2}" for i in range(20)]
    doc = _doc(_write(tmp_path / "big.csv", ["a,b,y", *rows]))
    exc = _data_error(doc)
    assert exc.path == "data.standardize" and "a" in str(exc) and "standardize = false" in str(exc)
    doc["data"]["standardize"] = False  # unscaled, the same file loads, finite
    _assert_finite(load_dataset(duofit.load_spec(doc)))


# --------------------------------------------------------------------------- non-numeric columns
@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("true", "booleans"),
        ("x", "one text cell in a numeric column"),
        ('"1,000"', "a thousands separator"),
        ("1_000", "an underscore separator"),
        ("99999999999999999999999", "an integer beyond int64"),
        ("2024-01-01", "a date"),
    ],
)
def test_non_numeric_feature_cell(tmp_path: Path, cell: str, why: str) -> None:
    rows = _rows()
    rows[7] = f"{cell},14,1"
    if cell == "true":
        rows = [f"{'true' if i % 2 else 'false'},{2 * i},{i % 2}" for i in range(20)]
    exc = _data_error(_doc(_write(tmp_path / "n.csv", ["a,b,y", *rows])))
    assert exc.path == "data.features" and "non-numeric" in str(exc) and "a" in str(exc), why


def test_nul_byte_in_a_cell(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"a,b,y\n" + b"\n".join(f"{i},{i}\x00,{i % 2}".encode() for i in range(20)) + b"\n")
    exc = _data_error(_doc(path))
    assert exc.path in ("data.features", "data.path")


def test_latin1_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"a,b,y\n" + "\n".join(f"{i},{i},caf\xe9{i % 2}" for i in range(20)).encode("latin-1"))
    exc = _data_error(_doc(path))
    assert exc.path == "data.path" and "cannot parse" in str(exc)


def test_text_labels_are_classes_not_numbers(tmp_path: Path) -> None:
    rows = [f"{i},{2 * i},{'cat' if i % 2 else 'dog'}" for i in range(20)]
    ds = load_dataset(duofit.load_spec(_doc(_write(tmp_path / "labels.csv", ["a,b,y", *rows]))))
    assert ds.classes is not None and ds.classes.tolist() == ["cat", "dog"]
    assert ds.y_train.dtype == np.int64
    _assert_finite(ds)


# --------------------------------------------------------------------------- empty-ish files
@pytest.mark.parametrize(
    "content", [b"\n\n\n", b"   \n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"], ids=["newlines", "spaces", "bom", "bom-nl"]
)
def test_files_without_data(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(content)
    exc = _data_error(_doc(path))
    assert exc.path in ("data.path", "data.target")


def test_bom_before_header_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(["a,b,y", *_rows()]).encode())
    ds = load_dataset(duofit.load_spec(_doc(path, features=["a", "b"])))
    assert ds.feature_names == ("a", "b")


def test_target_only(tmp_path: Path) -> None:
    exc = _data_error(_doc(_write(tmp_path / "y.csv", ["y", *[str(i % 2) for i in range(20)]])))
    assert exc.path == "data.features" and "no feature columns" in str(exc)


# --------------------------------------------------------------------------- ragged rows / shapes
def test_short_row_is_a_gap_with_its_line(tmp_path: Path) -> None:
    rows = _rows()
    rows[6] = "6"
    exc = _data_error(_doc(_write(tmp_path / "short.csv", ["a,b,y", *rows])))
    assert exc.path == "data.path" and "line 8" in str(exc)


def test_one_long_row(tmp_path: Path) -> None:
    rows = _rows()
    rows[9] = "9,18,1,77"
    exc = _data_error(_doc(_write(tmp_path / "long.csv", ["a,b,y", *rows])))
    assert exc.path == "data.path" and "line 11" in str(exc)


def test_every_row_one_field_longer_than_the_header(tmp_path: Path) -> None:
    # pandas' default would make column 1 the index and shift a<-b, b<-y, y<-extra, silently
    rows = [f"{i},{2 * i},{i % 2},{100 + i}" for i in range(20)]
    exc = _data_error(_doc(_write(tmp_path / "shifted.csv", ["a,b,y", *rows])))
    assert exc.path == "data.path" and "more fields than its header" in str(exc) and "a, b, y" in str(exc)


def test_trailing_delimiter_on_every_row_keeps_columns_in_place(tmp_path: Path) -> None:
    rows = [f"{i},{2 * i},{i % 2}," for i in range(20)]  # spreadsheet export with a trailing comma
    doc = _doc(_write(tmp_path / "trailing.csv", ["a,b,y", *rows]), standardize=False, test_size=0.5)
    ds = load_dataset(duofit.load_spec(doc))
    x = np.concatenate([ds.x_train, ds.x_test])
    assert ds.feature_names == ("a", "b")
    assert np.array_equal(x[:, 1], 2 * x[:, 0]), "columns were shifted"


def test_trailing_delimiter_on_the_header_is_an_empty_column(tmp_path: Path) -> None:
    rows = [f"{i},{2 * i},{i % 2}," for i in range(20)]
    exc = _data_error(_doc(_write(tmp_path / "trailing_header.csv", ["a,b,y,", *rows])))
    assert "missing values" in str(exc) and "Unnamed" in str(exc)


def test_duplicate_column_names(tmp_path: Path) -> None:
    # pandas renames the second 'y' to 'y.1', which would become a feature: the target, leaked
    rows = [f"{i},{i % 2},{i % 2}" for i in range(20)]
    exc = _data_error(_doc(_write(tmp_path / "dup.csv", ["a,y,y", *rows])))
    assert exc.path == "data.path" and "more than once" in str(exc) and "y" in str(exc)


def test_feature_listed_twice(tmp_path: Path) -> None:
    exc = _data_error(_doc(_write(tmp_path / "d.csv", ["a,b,y", *_rows()]), features=["a", "b", "a"]))
    assert exc.path == "data.features" and "'a'" not in str(exc) and "a more than once" in str(exc)


def test_target_listed_as_feature(tmp_path: Path) -> None:
    exc = _data_error(_doc(_write(tmp_path / "d.csv", ["a,b,y", *_rows()]), features=["a", "y"]))
    assert exc.path == "data.features" and "target" in str(exc)


def test_semicolon_separated_file_names_the_single_column(tmp_path: Path) -> None:
    rows = [r.replace(",", ";") for r in _rows()]
    exc = _data_error(_doc(_write(tmp_path / "semi.csv", ["a;b;y", *rows])))
    assert exc.path == "data.target" and "a;b;y" in str(exc)


# --------------------------------------------------------------------------- classes
def test_single_class_in_the_training_split(tmp_path: Path) -> None:
    from sklearn.model_selection import train_test_split

    y = [0] * 19 + [1]
    # a split seed that puts the only sample of class 1 into the test part
    seed = next(s for s in range(100) if 1 not in train_test_split(y, test_size=0.2, random_state=s)[0])
    rows = [f"{i},{2 * i},{label}" for i, label in enumerate(y)]
    doc = _doc(_write(tmp_path / "rare.csv", ["a,b,y", *rows]), split_seed=seed)
    exc = _data_error(doc)
    assert exc.path == "data.stratify" and "single class" in str(exc) and "stratify = true" in str(exc)
    doc["data"]["stratify"] = True  # cannot stratify a class of one sample either: still clear
    exc = _data_error(doc)
    assert "cannot split" in str(exc)


# --------------------------------------------------------------------------- special files and caps
def test_path_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    exc = _data_error(_doc(folder))
    assert exc.path == "data.path" and "not a regular file" in str(exc)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX FIFOs and /dev/zero")
def test_fifo_and_device_do_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        exc = _data_error(_doc(path))
        assert exc.path == "data.path" and "not a regular file" in str(exc)


@pytest.mark.parametrize("suffix", [".gz", ".zip", ".bz2", ".xz"])
def test_compressed_csv_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data.csv{suffix}"
    path.write_bytes(b"not really compressed")
    exc = _data_error(_doc(path))
    assert exc.path == "data.path" and "compressed" in str(exc)


def test_csv_over_the_byte_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "d.csv", ["a,b,y", *_rows()])
    monkeypatch.setattr(data_module, "MAX_CSV_BYTES", 100)
    exc = _data_error(_doc(path))
    assert exc.path == "data.path" and "MAX_CSV_BYTES" in str(exc)


def test_csv_over_the_cell_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "d.csv", ["a,b,y", *_rows(40)])
    monkeypatch.setattr(data_module, "MAX_DATA_ELEMENTS", 100)  # 40 rows x 3 columns = 120
    exc = _data_error(_doc(path))
    assert exc.path == "data.path" and "MAX_DATA_ELEMENTS" in str(exc)


# --------------------------------------------------------------------------- the property
TOKENS = ["0", "1", "-2.5", "3e2", "1e308", "-1e308", "", "NA", "nan", "inf", "-inf", "x", "true", " 4 ", '"5"', "0x1"]


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, int]:
    """A small CSV: header a,b,y, rows of random tokens, sometimes ragged; returns (text, data rows)."""
    n_rows = draw(st.integers(0, 30))
    lines = ["a,b,y"]
    for _ in range(n_rows):
        n_fields = draw(st.sampled_from([3, 3, 3, 3, 3, 3, 2, 4]))
        cells = [draw(st.sampled_from(TOKENS)) for _ in range(n_fields)]
        if n_fields >= 3 and draw(st.booleans()):
            cells[2] = draw(st.sampled_from(["0", "1"]))  # mostly valid labels, so some files load
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n", n_rows


@settings(
    max_examples=CSV_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(csv=csv_files(), loss=st.sampled_from(["binary_crossentropy", "mse"]), standardize=st.booleans())
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow inside the scaler on 1e308 columns
def test_any_csv_gives_data_error_or_finite_arrays(
    tmp_path: Path, csv: tuple[str, int], loss: str, standardize: bool
) -> None:
    text, n_rows = csv
    path = tmp_path / "prop.csv"
    path.write_text(text, encoding="utf-8")
    spec = duofit.load_spec(_doc(path, loss=loss, standardize=standardize, test_size=0.25))
    try:
        ds = load_dataset(spec)
    except DataError as exc:
        assert type(exc) is DataError
        assert exc.path and exc.path in str(exc), f"path {exc.path!r} not named in: {exc}"
        return
    _assert_finite(ds)
    assert ds.n_features == 2 and ds.feature_names == ("a", "b")
    total = len(ds.x_train) + len(ds.x_test)  # val is the test split (val_size = 0)
    assert total == n_rows, "a row was dropped or invented"
    assert not math.isnan(float(np.sum(ds.x_train)))
