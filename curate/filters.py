"""Filters: registered predicates over index rows that say why they drop a row; counted and shown by `curate filter`."""

import math
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

FILTERS: dict[str, type["Filter"]] = {}


def register_filter(name: str):
    """Class decorator: a filter available by name (the CLI flag --NAME)."""

    def wrap(cls: type["Filter"]) -> type["Filter"]:
        cls.name = name
        FILTERS[name] = cls
        return cls

    return wrap


def make_filter(name: str, value: float) -> "Filter":
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; valid filters: {', '.join(FILTERS)}")
    return FILTERS[name](value)


@dataclass(frozen=True)
class Filter:
    """`reasons(rows)`: per row, None to keep it or a short reason for dropping it. Rows arrive best first; `group`
    holds the ranking group of each row (all one group, or its task with --per-task)."""

    value: float
    name: ClassVar[str] = ""

    def reasons(self, rows: pd.DataFrame, group: pd.Series) -> pd.Series:
        raise NotImplementedError


def _rank_in_group(rows: pd.DataFrame, group: pd.Series) -> pd.Series:
    return rows.groupby(group, sort=False).cumcount() + 1  # rows are sorted best first


@register_filter("top-k")
@dataclass(frozen=True)
class TopK(Filter):
    def __post_init__(self) -> None:
        if self.value < 1 or self.value != int(self.value):
            raise ValueError(f"--top-k must be a whole number >= 1, got {self.value:g}")

    def reasons(self, rows: pd.DataFrame, group: pd.Series) -> pd.Series:
        keep = _rank_in_group(rows, group) <= self.value
        return pd.Series([None if k else f"not in the top {int(self.value)}" for k in keep], index=rows.index, dtype=object)


@register_filter("top-frac")
@dataclass(frozen=True)
class TopFraction(Filter):
    def __post_init__(self) -> None:
        if not 0 < self.value <= 1:
            raise ValueError(f"--top-frac must be in (0, 1], got {self.value:g}")

    def reasons(self, rows: pd.DataFrame, group: pd.Series) -> pd.Series:
        size = group.groupby(group, sort=False).transform("size")
        keep = _rank_in_group(rows, group) <= (size * self.value).apply(math.ceil)
        return pd.Series([None if k else f"not in the top {self.value:.0%}" for k in keep], index=rows.index, dtype=object)


@dataclass(frozen=True)
class Threshold(Filter):
    """Keep rows whose `column` is at least the value."""

    column: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 1:
            raise ValueError(f"--{self.name} must be in [0, 1], got {self.value:g}")

    def reasons(self, rows: pd.DataFrame, group: pd.Series) -> pd.Series:
        return pd.Series([None if v >= self.value else f"{self.label} below {self.value:g}" for v in rows[self.column]], index=rows.index, dtype=object)


@register_filter("min-progress")
@dataclass(frozen=True)
class MinProgress(Threshold):
    column: ClassVar[str] = "final_progress"
    label: ClassVar[str] = "final progress"


@register_filter("min-success")
@dataclass(frozen=True)
class MinSuccess(Threshold):
    column: ClassVar[str] = "success_prob"
    label: ClassVar[str] = "success probability"


def apply_filters(rows: pd.DataFrame, filters: list[Filter], per_task: bool = False) -> pd.DataFrame:
    """`rows` (best first) with a `reason` column: None where every filter keeps the row, else the reason of the
    first filter that dropped it. Each filter sees only the rows the earlier ones kept."""
    group = rows["task"] if per_task else pd.Series(0, index=rows.index)
    reason = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    for f in filters:
        alive = reason.isna()
        reason[alive] = f.reasons(rows[alive], group[alive])
    return rows.assign(reason=reason)
