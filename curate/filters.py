"""Filters: named predicates over index rows that say why they drop a row; counted and shown by `curate filter`."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

@dataclass(frozen=True)
class Filter:
    """`keep(rows, group)`: per row, whether it stays (a bool array); `reason` says why the others were dropped. Rows
    arrive best first; `group` holds each row's ranking group (its task with --per-task), or is None: one group."""

    value: float
    name: ClassVar[str] = ""

    def keep(self, rows: pd.DataFrame, group: pd.Series | None) -> np.ndarray:
        raise NotImplementedError

    @property
    def reason(self) -> str:
        raise NotImplementedError


def _rank_in_group(group: pd.Series | None, n: int) -> np.ndarray:
    """1-based rank of each row in its group (rows are sorted best first); group None: one group."""
    return np.arange(1, n + 1) if group is None else group.groupby(group, sort=False).cumcount().to_numpy() + 1


def _group_size(group: pd.Series | None, n: int) -> np.ndarray | int:
    return n if group is None else group.groupby(group, sort=False).transform("size").to_numpy()


@dataclass(frozen=True)
class TopK(Filter):
    name: ClassVar[str] = "top-k"

    def __post_init__(self) -> None:
        if self.value < 1 or self.value != int(self.value):
            raise ValueError(f"--top-k must be a whole number >= 1, got {self.value:g}")

    def keep(self, rows: pd.DataFrame, group: pd.Series | None) -> np.ndarray:
        return _rank_in_group(group, len(rows)) <= self.value

    @property
    def reason(self) -> str:
        return f"not in the top {int(self.value)}"


@dataclass(frozen=True)
class TopFraction(Filter):
    name: ClassVar[str] = "top-frac"

    def __post_init__(self) -> None:
        if not 0 < self.value <= 1:
            raise ValueError(f"--top-frac must be in (0, 1], got {self.value:g}")

    def keep(self, rows: pd.DataFrame, group: pd.Series | None) -> np.ndarray:
        return _rank_in_group(group, len(rows)) <= np.ceil(_group_size(group, len(rows)) * self.value)

    @property
    def reason(self) -> str:
        return f"not in the top {self.value:.0%}"


@dataclass(frozen=True)
class Threshold(Filter):
    """Keep rows whose `column` is at least the value."""

    column: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 1:
            raise ValueError(f"--{self.name} must be in [0, 1], got {self.value:g}")

    def keep(self, rows: pd.DataFrame, group: pd.Series | None) -> np.ndarray:
        return rows[self.column].to_numpy() >= self.value

    @property
    def reason(self) -> str:
        return f"{self.label} below {self.value:g}"


@dataclass(frozen=True)
class MinProgress(Threshold):
    name: ClassVar[str] = "min-progress"
    column: ClassVar[str] = "final_progress"
    label: ClassVar[str] = "final progress"


@dataclass(frozen=True)
class MinSuccess(Threshold):
    name: ClassVar[str] = "min-success"
    column: ClassVar[str] = "success_prob"
    label: ClassVar[str] = "success probability"


@dataclass(frozen=True)
class MinMatch(Threshold):
    """Keep episodes whose task fits the instruction; scores of models without a match head count as a match (1)."""

    name: ClassVar[str] = "min-match"
    column: ClassVar[str] = "match_prob"
    label: ClassVar[str] = "match probability"

    def keep(self, rows: pd.DataFrame, group: pd.Series | None) -> np.ndarray:
        return rows[self.column].fillna(1.0).to_numpy() >= self.value


def apply_filters(rows: pd.DataFrame, filters: list[Filter], per_task: bool = False) -> pd.DataFrame:
    """`rows` (best first) with a `reason` column: None where every filter keeps the row, else the reason of the
    first filter that dropped it. Each filter sees only the rows the earlier ones kept."""
    group = rows["task"] if per_task else None
    reason = np.full(len(rows), None, dtype=object)
    for f in filters:
        alive = np.flatnonzero(pd.isna(reason))
        if len(alive) == len(rows):
            kept = f.keep(rows, group)
        else:
            kept = f.keep(rows.iloc[alive], None if group is None else group.iloc[alive])
        reason[alive[~kept]] = f.reason
    return rows.assign(reason=reason)


FILTERS: dict[str, type[Filter]] = {f.name: f for f in (TopK, TopFraction, MinProgress, MinSuccess, MinMatch)}  # by CLI flag


def make_filter(name: str, value: float) -> Filter:
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; valid filters: {', '.join(FILTERS)}")
    return FILTERS[name](value)
