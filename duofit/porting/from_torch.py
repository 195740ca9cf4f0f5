"""A torch ``nn.Module`` -> a spec whose initial weights are the module's own.

The module comes live, or from a *factory* ``module:function`` (``mypkg.models:make_net``):
a function called with no arguments that returns the ``nn.Module``, weights loaded by
whatever means the user trusts. duofit never unpickles a ``.pt`` / ``.pth`` file (a pickle
can run code); weights come from the live module or from ``.safetensors`` loaded in the
factory. torch is imported only by :mod:`duofit.backends.torch.importer`, when called.

Example:
    >>> load_factory("weights.pt")
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: source: weights.pt is a pickled torch file, which duofit never loads ...
    >>> load_factory("no colon")
    Traceback (most recent call last):
    ...
    duofit.common.errors.SpecError: source: 'no colon' is not a factory module:function ...
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duofit.common.errors import SpecError
from duofit.common.imported import ImportedModel
from duofit.common.spec import Spec
from duofit.porting.assemble import base_input_shape, spec_of

__all__ = ["FACTORY_PATTERN", "PICKLE_SUFFIXES", "from_torch", "import_torch_model", "is_torch_module", "load_factory"]

FACTORY_PATTERN = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<function>[A-Za-z_]\w*)$")
# Pickled files (torch.save and friends): never loaded, unpickling can run code
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_WEIGHTS_HINT = (
    "give a factory module:function that builds the nn.Module, with its weights (e.g. loaded with "
    "safetensors.torch.load_model), or pass the live module"
)


def is_torch_module(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.nn.Module`` (checked by class, without importing torch).

    Example:
        >>> is_torch_module(object())
        False
    """
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module" for c in type(obj).__mro__)


def _source_error(text: str, problem: str) -> SpecError:
    return SpecError(f"source: {text}: {problem}", path="source")


def load_factory(text: str) -> Any:
    """Call the factory ``module:function`` (no arguments) and return the ``nn.Module`` it builds.

    Raises:
        SpecError: (exit 2) a ``.pt``/``.pth`` path, text that is not ``module:function``, a
            module that cannot be imported, a missing or non-callable function, a factory that
            raises (its exception type and message) or returns something else than an ``nn.Module``.
    """
    if Path(text).suffix.lower() in PICKLE_SUFFIXES:
        raise SpecError(
            f"source: {Path(text).name} is a pickled torch file, which duofit never loads (unpickling can run "
            f"code): {_WEIGHTS_HINT}",
            path="source",
        )
    match = FACTORY_PATTERN.match(text)
    if match is None:
        raise SpecError(
            f"source: {text!r} is not a factory module:function (e.g. mypkg.models:make_net, a function that "
            "takes no arguments and returns the nn.Module)",
            path="source",
        )
    name, function = match["module"], match["function"]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise _source_error(
            text, f"no module {exc.name!r} to import; run from the folder that holds {name}, or add it to PYTHONPATH"
        ) from None
    except Exception as exc:  # the user's module fails while it is imported
        raise _source_error(text, f"importing {name} raised {type(exc).__name__}: {exc}") from None
    factory = getattr(module, function, None)
    if factory is None:
        close = difflib.get_close_matches(function, [n for n in dir(module) if not n.startswith("_")], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise _source_error(text, f"{name} has no attribute {function!r}{hint}")
    if not callable(factory):
        raise _source_error(text, f"{name}.{function} is a {type(factory).__name__}, not a function to call")
    try:
        built = factory()
    except Exception as exc:  # whatever the user's factory raises
        raise _source_error(
            text, f"the factory raised {type(exc).__name__}: {exc}; fix the factory (it is called with no arguments)"
        ) from None
    if not is_torch_module(built):
        raise _source_error(
            text, f"the factory returned a {type(built).__name__}, not a torch.nn.Module; return the model itself"
        )
    return built


def import_torch_model(source: Any, input_shape: tuple[int, ...]) -> ImportedModel:
    """Read a factory ``module:function`` or a live ``nn.Module`` for data of ``input_shape`` (channels last).

    Raises:
        SpecError: see :func:`load_factory` and :func:`duofit.backends.torch.importer.import_torch`.
    """
    if isinstance(source, (str, Path)):
        label, module = str(source), load_factory(str(source))
    elif is_torch_module(source):
        label, module = f"torch module {type(source).__name__}", source
    else:
        raise SpecError(
            f"source: a {type(source).__name__} is not a torch.nn.Module or a factory module:function", path="source"
        )
    from duofit.backends.torch.importer import import_torch

    return import_torch(module, input_shape, source=label)


def from_torch(module: Any, base: str | Path | Mapping[str, Any], *, weights_path: str | Path | None = None) -> Spec:
    """The spec of a torch model on ``base`` (the data and training settings), its weights as initial weights.

    Args:
        module: A live ``nn.Module``, or a factory ``module:function``.
        base: A base spec (file or mapping) without a model: the data, the loss, training settings.
        weights_path: Where the ``.npz`` of weights is written (default: a new
            ``duofit-import-*`` temporary folder); the spec names it.

    Returns:
        The validated spec, checked against the data (the module's weights fit its shape).

    Raises:
        SpecError: an unsupported module or operation (named, with where it is and what is
            supported), a forward fx cannot trace, a bad factory, a base spec with a model or no loss.
        DataError: the data does not fit the module.
    """
    shape = base_input_shape(base)  # the data is read first: the module is traced on its sample shape
    return spec_of(import_torch_model(module, shape), base, weights_path)[0]
