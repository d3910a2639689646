"""Hyperparameters: what each model accepts, its default and its bounds.

A :class:`Param` describes one hyperparameter of a registered model (see
:mod:`featx.models.registry`): its kind, default, help text and the values it
accepts. It parses values from the command line, from sweep files and from
Python alike, so a bad value is one :class:`~featx.errors.ConfigError` naming it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

#: Most layers a model built from ``units`` (or ``filters``) may have.
MAX_LAYERS = 16
#: Widest layer (units or filters) accepted.
MAX_WIDTH = 8192


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its kind, default, help, and the values it accepts.

    Parameters
    ----------
    kind : {'int', 'float', 'bool', 'ints', 'str'}
    default : object
    help : str
    choices : tuple of str, optional
        The words a ``str`` parameter accepts.
    low, high : float, optional
        Bounds of a number (of each item of ``ints``; of a numeric ``str`` value,
        which is then accepted besides ``choices``). Every number must be finite.
    open_low, open_high : bool
        Exclude the bound itself.
    max_len : int, optional
        Most items of an ``ints`` value.
    """

    kind: str
    default: object
    help: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    max_len: int | None = None

    def _in_bounds(self, x) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.open_high else x > self.high):
            return False
        return True

    def expected(self) -> str:
        """What this parameter accepts, in words (for error messages)."""
        if self.low is None and self.high is None:
            bounds = ""
        elif self.high is None:
            bounds = f" {'>' if self.open_low else '>='} {self.low:g}"
        elif self.low is None:
            bounds = f" {'<' if self.open_high else '<='} {self.high:g}"
        else:
            bounds = (f" in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                      f"{')' if self.open_high else ']'}")
        if self.kind == "ints":
            limits = [f"each <= {self.high:g}"] if self.high is not None else []
            limits += [f"at most {self.max_len} of them"] if self.max_len else []
            more = f" ({', '.join(limits)})" if limits else ""
            return f"comma-separated positive integers like 256,128,64{more}"
        if self.kind == "str" and self.choices:
            numbers = f" or a number{bounds}" if bounds else ""
            return "one of " + ", ".join(self.choices) + numbers
        return {"int": "an integer", "float": "a finite number", "bool": "true or false",
                "str": "text"}[self.kind] + bounds

    def parse(self, model: str, name: str, value):
        """Convert ``value`` (a string from the command line, or a Python value) to this kind.

        Raises
        ------
        ConfigError
            ``value`` is not of this kind, not finite, or out of bounds.
        """
        try:
            if self.kind == "ints":
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                else:
                    parts = list(value) if isinstance(value, (list, tuple)) else [value]
                if any(isinstance(p, bool) or (isinstance(p, float) and p != int(p)) for p in parts):
                    raise ValueError
                out = tuple(int(p) for p in parts)
                if not out or any(p <= 0 or not self._in_bounds(p) for p in out):
                    raise ValueError
                if self.max_len is not None and len(out) > self.max_len:
                    raise ValueError
                return out
            if self.kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                out = int(value)
                if isinstance(value, float) and value != out:
                    raise ValueError
                if not self._in_bounds(out):
                    raise ValueError
                return out
            if self.kind == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if not self._in_bounds(out):
                    raise ValueError
                return out
            if self.kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            out = str(value)
            if self.choices and out not in self.choices:
                if self.low is None and self.high is None:
                    raise ValueError
                if not self._in_bounds(float(out)):  # a number where numbers are allowed
                    raise ValueError
            return out
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(
                f"model {model!r}: bad value for {name}; expected {self.expected()}. "
                f"Received: {name}={value!r}"
            ) from None


#: ``depth``: the number of layers of a model with ``units``.
DEPTH = Param("int", None, "number of layers", low=1, high=MAX_LAYERS)

_DROPOUT_HELP = "dropout rate after each layer, in [0, 1)"

#: The SVM's C and gamma (shared by svm and ensemble).
SVM_C = Param("float", 10.0, "SVM: inverse regularisation strength (scikit-learn's own default: 1)",
              low=0, high=1e6, open_low=True)
SVM_GAMMA = Param("str", "scale", "SVM: RBF width: scale, auto or a number",
                  ("scale", "auto"), low=0, high=1e6, open_low=True)
#: A square convolution kernel.
KERNEL = Param("int", 3, "convolution kernel size (square)", low=1, high=64)


def units(default, help: str) -> Param:
    """Layer widths (``ints``), each in [1, MAX_WIDTH], at most MAX_LAYERS of them."""
    return Param("ints", default, help, low=1, high=MAX_WIDTH, max_len=MAX_LAYERS)


def dropout(default, help: str = _DROPOUT_HELP) -> Param:
    """A dropout rate in [0, 1)."""
    return Param("float", default, help, low=0, high=1, open_high=True)
