"""Windows over a series for forecasting: CSV columns (``csv_series``) or a series statsmodels ships.

Each sample is ``data.series.window`` consecutive steps of the input columns, shape
``(window, columns)``; its target is the target column's value ``horizon`` steps after the
window's last step; windows start every ``stride`` steps. Rows are in time order, and the
split keeps it (:func:`duofit.common.data.split.spec_parts`): the test part is the latest
windows, validation the ones before it, training the earliest. The scaler is fitted on the
training windows only (:mod:`duofit.common.data.features`).

The bundled series need statsmodels (``pip install 'duofit[series]'``), which ships them
with its wheel (no download): ``sunspots`` is the yearly mean sunspot number 1700-2008 (309
values), ``co2`` the weekly CO2 concentration at Mauna Loa 1958-2001 (2,284 weeks, 59 of them
missing and filled by linear interpolation between their neighbours).

Example:
    >>> import numpy as np
    >>> from duofit.common.spec.data import SeriesSpec
    >>> x, y = make_windows(np.arange(6.0)[:, None], np.arange(6.0), SeriesSpec(window=3, horizon=2))
    >>> x[:, :, 0].tolist(), y.tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [4.0, 5.0])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from duofit.common.data.csvfile import check_file, check_values, parse_csv
from duofit.common.errors import DataError
from duofit.common.spec import Spec
from duofit.common.spec.data import SeriesSpec

__all__ = ["BUNDLED_SERIES", "make_windows", "read_series", "window_count"]


def _statsmodels_data(name: str) -> object:
    try:
        import statsmodels.api as sm
    except ImportError:
        raise DataError(
            f"data.kind: kind {name!r} reads the series statsmodels ships; install it with "
            "pip install 'duofit[series]' (or pip install statsmodels)",
            path="data.kind",
        ) from None
    return getattr(sm.datasets, name).load_pandas().data


def _sunspots() -> tuple[np.ndarray, str]:
    frame = _statsmodels_data("sunspots")
    return frame["SUNACTIVITY"].to_numpy(dtype=np.float64), "SUNACTIVITY"  # type: ignore[index]


def _co2() -> tuple[np.ndarray, str]:
    column = _statsmodels_data("co2")["co2"]  # type: ignore[index]
    return column.interpolate(method="linear").to_numpy(dtype=np.float64), "co2"


# kind -> the series (float64, time order) and its name
BUNDLED_SERIES: dict[str, Callable[[], tuple[np.ndarray, str]]] = {"sunspots": _sunspots, "co2": _co2}


def window_count(length: int, series: SeriesSpec) -> int:
    """Windows a series of ``length`` steps makes (0 when it is shorter than window + horizon).

    Example:
        >>> window_count(309, SeriesSpec(window=24, horizon=1, stride=2))
        143
    """
    span = series.window + series.horizon
    return 0 if length < span else (length - span) // series.stride + 1


def make_windows(values: np.ndarray, target: np.ndarray, series: SeriesSpec) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(n, window, columns)`` of ``values`` and their targets ``(n,)`` from ``target``.

    Args:
        values: Input columns, ``(steps, columns)``, in time order.
        target: The column to forecast, ``(steps,)``.
        series: Window length, horizon and stride.

    Raises:
        DataError: the series is shorter than ``window + horizon`` (path ``data.series.window``).
    """
    n = window_count(len(values), series)
    if n == 0:
        longest = len(values) - series.horizon
        fix = f"use window <= {longest}" if longest > 0 else "use a longer series or a shorter horizon"
        raise DataError(
            f"data.series.window: a window of {series.window} steps plus a horizon of {series.horizon} needs "
            f"{series.window + series.horizon} steps, but the series has {len(values)}; {fix}",
            path="data.series.window",
        )
    starts = np.arange(n) * series.stride
    x = values[starts[:, None] + np.arange(series.window)]
    y = target[starts + series.window + series.horizon - 1]
    return x, y


def read_series(spec: Spec, *, max_cells: int, max_csv_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The windows of the spec's series: ``x`` ``(n, window, columns)`` float64, ``y`` ``(n,)``, column names.

    Raises:
        DataError: statsmodels missing, an unreadable CSV or column, a series shorter than a
            window, or more window values than ``max_cells``.
    """
    series = spec.data.series
    assert series is not None  # the spec requires it for the series kinds
    if spec.data.kind in BUNDLED_SERIES:
        column, name = BUNDLED_SERIES[spec.data.kind]()
        values, target, names = column[:, None], column, tuple([name])
    else:
        values, target, names = _csv_columns(spec, max_csv_bytes)
    cells = window_count(len(values), series) * series.window * values.shape[1]
    if cells > max_cells:
        raise DataError(
            f"data.series.stride: {window_count(len(values), series):,} windows of {series.window} x "
            f"{values.shape[1]} values make {cells:,} values; the cap is {max_cells:,} "
            "(duofit.common.data.MAX_DATA_ELEMENTS): use a larger stride or a shorter window",
            path="data.series.stride",
        )
    x, y = make_windows(values, target, series)
    return x, y, names


def _csv_columns(spec: Spec, max_bytes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Input columns (``data.features``, default the target column alone) and the target column of a CSV."""
    path = Path(str(spec.data.path))
    check_file(path, max_bytes)
    frame = parse_csv(path)
    columns = [str(c) for c in frame.columns]
    target = str(spec.data.target)
    if not isinstance(spec.data.target, str):
        raise DataError("data.target: kind 'csv_series' forecasts one column; name one", path="data.target")
    if target not in columns:
        raise DataError(
            f"data.target: column {target!r} is not in {path.name}; columns are: {', '.join(columns)}",
            path="data.target",
        )
    features = list(spec.data.features) if spec.data.features else [target]
    missing = [c for c in features if c not in columns]
    if missing or len(set(features)) < len(features):
        what = f"columns not in {path.name}: {', '.join(missing)}" if missing else "a column is listed twice"
        raise DataError(f"data.features: {what}", path="data.features")
    check_values(frame, features, [target], path)
    if frame[target].dtype.kind not in "fiu":
        raise DataError(
            f"data.target: column {target!r} of {path.name} is not numeric (values like "
            f"{frame[target].head(3).tolist()}); a forecast target must be a number",
            path="data.target",
        )
    return frame[features].to_numpy(dtype=np.float64), frame[target].to_numpy(dtype=np.float64), tuple(features)
