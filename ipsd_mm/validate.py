"""Option checks, written once: each returns the normalised value or raises a ``ValueError``
that names the option and what it takes. Pure Python and numpy, so that ``swap/`` (free of
OpenMMLab), ``data/`` and ``distill/`` share them."""
import math
from typing import Sequence, Tuple, Union

import numpy as np

IntOrPair = Union[int, Sequence[int]]


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def to_number(value, name: str, low: float = -math.inf, high: float = math.inf,
              low_open: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] with ``low_open``)."""
    ok = (is_number(value) and math.isfinite(value) and value <= high
          and (value > low if low_open else value >= low))
    if not ok:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f'{name} must be a finite number in {bounds}, got {value!r}')
    return float(value)


def to_probability(value: float, name: str) -> float:
    return to_number(value, name, 0.0, 1.0)


def to_int(value: int, name: str, minimum: int) -> int:
    if not is_int(value) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')
    return int(value)


def to_bool(value: bool, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f'{name} must be True or False, got {value!r}')
    return bool(value)


def to_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')
    return value


def to_pair(value: IntOrPair, name: str, minimum: int = 1) -> Tuple[int, int]:
    """``value`` as (rows, cols) / (h, w); an int means both."""
    pair = (value, value) if is_int(value) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(is_int(v) and v >= minimum for v in pair)):
        raise ValueError(f'{name} must be an int >= {minimum} or a pair of them, got {value!r}')
    return int(pair[0]), int(pair[1])


def to_range(value: Union[float, Sequence[float]], name: str) -> Tuple[float, float]:
    """``value`` as a (low, high) range inside [0, 1]; a float means a fixed value."""
    rng = (value, value) if is_number(value) else value
    if (not isinstance(rng, (tuple, list)) or len(rng) != 2
            or not all(is_number(v) for v in rng) or not 0 <= rng[0] <= rng[1] <= 1):
        raise ValueError(f'{name} must be a float in [0, 1] or a (low, high) range inside '
                         f'[0, 1] with low <= high, got {value!r}')
    return float(rng[0]), float(rng[1])


def to_classes(value: Sequence[int], name: str) -> Tuple[int, ...]:
    """Class ids as a sorted tuple of distinct non-negative ints."""
    if is_int(value):
        value = (value, )
    if not isinstance(value, (tuple, list)) or not all(is_int(v) and v >= 0 for v in value):
        raise ValueError(f'{name} must be a list of class ids (ints >= 0), got {value!r}')
    return tuple(sorted({int(v) for v in value}))
