"""Leave-one-group-out choice of a setting: choose on every group but one, score on that one, rotate.

A *group* is what must not leak between tuning and testing: a LoCoMo conversation, a
LongMemEval history. ``scores[candidate][group]`` holds one figure per question of that
group under that candidate. Groups belong to datasets; a candidate's training score is the
mean over datasets of its per-question mean on the training groups of each dataset, so a
small dataset weighs as much as a large one and one setting serves both.

>>> scores = {"a": {"x1": [1.0], "x2": [0.0]}, "b": {"x1": [0.5], "x2": [0.5]}}
>>> result = leave_one_group_out(scores, {"x1": "x", "x2": "x"})
>>> result["chosen"]  # on x2 alone "b" wins, on x1 alone "a" does
{'x1': 'b', 'x2': 'a'}
>>> result["cross_validated"]["x"], result["in_sample"]["x"]
(0.25, 0.5)
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any


def objective(scores: Mapping[str, Sequence[float]], dataset_of: Mapping[str, str], groups: Sequence[str]) -> float:
    """The mean over datasets of the per-question mean on ``groups``."""
    pooled: dict[str, list[float]] = defaultdict(list)
    for group in groups:
        pooled[dataset_of[group]].extend(scores[group])
    return statistics.fmean(statistics.fmean(v) for v in pooled.values() if v)


def leave_one_group_out(scores: Mapping[str, Mapping[str, Sequence[float]]],
                        dataset_of: Mapping[str, str]) -> dict[str, Any]:
    """Per held-out group: the candidate chosen on the others; per dataset: the held-out mean
    (``cross_validated``) and the mean of the candidate chosen on everything (``in_sample``)."""
    groups = sorted(dataset_of)
    candidates = list(scores)  # ties go to the first candidate, so list the current default first
    chosen, held_out = {}, defaultdict(list)
    for group in groups:
        training = [g for g in groups if g != group]
        best = max(candidates, key=lambda c: objective(scores[c], dataset_of, training))
        chosen[group] = best
        held_out[dataset_of[group]].extend(scores[best][group])
    overall = max(candidates, key=lambda c: objective(scores[c], dataset_of, groups))
    in_sample = defaultdict(list)
    for group in groups:
        in_sample[dataset_of[group]].extend(scores[overall][group])
    return {"chosen": chosen, "overall": overall,
            "cross_validated": {d: statistics.fmean(v) for d, v in sorted(held_out.items())},
            "in_sample": {d: statistics.fmean(v) for d, v in sorted(in_sample.items())}}
