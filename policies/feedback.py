"""How feedback moves a user's learned weights. Pure: weights and a rating in, new weights out.

A rated answer moves the weight of its route and of every signal that found
its used episodes by one ``learning_rate`` step (up for good, down for bad),
multiplicatively, within ``[min_weight, max_weight]``.

>>> learn({"route:extraction": 1.0}, -1.0, 0.1, 0.25, 4.0)
{'route:extraction': 0.9}
>>> sorted(weight_keys("abstraction", [("lexical", "vector")]))
['route:abstraction', 'signal:lexical', 'signal:vector']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def weight_keys(route: str, used_signals: Iterable[Iterable[str]]) -> set[str]:
    """The weights a rating of an answer moves: its route's and its used episodes' signals'."""
    return {f"signal:{s}" for signals in used_signals for s in signals} | {f"route:{route}"}


def learn(current: Mapping[str, float], rating: float, learning_rate: float, min_weight: float,
          max_weight: float) -> dict[str, float]:
    """Each weight one step towards what worked (``rating`` > 0) or away from what did not."""
    step = learning_rate * (1 if rating > 0 else -1)
    return {k: min(max_weight, max(min_weight, w * (1 + step))) for k, w in current.items()}
