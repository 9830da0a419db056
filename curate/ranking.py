"""Ranking queries over the index: which model, which instruction, best or worst first."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from curate.errors import CurateError
from curate.index import Index


def choose_model(index: Index, model: str | None) -> str:
    """The model to rank by: the one given (as the index names it, or as given to `curate score --model`), else the
    only one there, else the shipped default's scores (an index from before an upgrade also holds the previous
    default's)."""
    models = index.models()
    if not models:
        raise CurateError(f"index {index.path} holds no scores; run `curate score DATASET --index {index.path}` first")
    if model is None and len(models) > 1:
        from curate.scorers import shipped_model_id  # loads torch: only when it is needed

        shipped = shipped_model_id()
        if shipped in models:
            return shipped
    return _one_of(index, models, model)


def _one_of(index: Index, models: list[str], model: str | None) -> str:
    if model is None:
        if len(models) > 1:
            raise CurateError(f"index {index.path} holds scores of several models; pass --model, one of: {', '.join(models)}")
        return models[0]
    if model in models:
        return model
    from curate.scorers import index_id_of  # loads torch: only when it is needed

    named = index_id_of(model)  # the folder (or `default`) given to `curate score --model`
    if named in models:
        return named
    raise CurateError(f"model {model!r} has no scores in {index.path}; models there: {', '.join(models)}")


def ranked(
    index_path: Path,
    instruction: str | None,
    datasets: Sequence[str],
    model: str | None,
    top: int | None = None,
    bottom: int | None = None,
    frames: bool = True,
) -> tuple[pd.DataFrame, str, int]:
    """Rows best first with a 1-based `rank`, the model, and how many rows there were before `top`/`bottom` kept
    the best/worst N (both: best then worst); `frames`: with the per-frame lists."""
    for flag, value in (("--top", top), ("--bottom", bottom)):
        if value is not None and value < 1:
            raise CurateError(f"{flag} must be at least 1, got {value}")
    resolved = [str(Path(d).expanduser().resolve()) for d in datasets]
    with Index(index_path, read_only=True) as index:
        model_id = choose_model(index, model)
        if instruction is not None and not index.has_instruction(instruction):
            raise CurateError(f"no scores under instruction {instruction!r}; score it with `curate score DATASET --instruction {instruction!r}`")
        where = {"instruction": instruction, "datasets": resolved, "model": model_id, "own_task": instruction is None}
        if top is None and bottom is None:
            rows = index.scores(**where, frames=frames)
            total = len(rows)
            rows.insert(0, "rank", range(1, total + 1))
            return rows, model_id, total
        total = index.count(**where)  # only the shown rows leave DuckDB: fast on millions of episodes
        parts = []
        if top:
            best = index.scores(**where, limit=top, frames=frames)
            parts.append(best.assign(rank=range(1, len(best) + 1)))
        if bottom:
            worst = index.scores(**where, limit=bottom, worst_first=True, frames=frames).iloc[::-1]
            parts.append(worst.assign(rank=range(total - len(worst) + 1, total + 1)))
    rows = pd.concat(parts).drop_duplicates("rank").reset_index(drop=True)
    return rows[["rank", *rows.columns.drop("rank")]], model_id, total

def ranked_retrieval(index_path: Path, query: str, datasets: Sequence[str], model: str | None) -> tuple[pd.DataFrame, str]:
    """`curate retrieve` results for a query, most similar first, and the SigLIP model they came from."""
    resolved = [str(Path(d).expanduser().resolve()) for d in datasets]
    with Index(index_path, read_only=True) as index:
        models = index.retrieval_models(query)
        if not models:
            raise CurateError(f"no retrieval results for {query!r} in {index.path}; run `curate retrieve query DATASET --query {query!r} --index {index.path}` first")
        model_id = _one_of(index, models, model)
        return index.retrievals(query, resolved, model_id), model_id


def match_text(value: float | None) -> str:
    """A match probability as shown in tables: three decimals, empty when the model has no match head (NaN/None)."""
    return "" if value is None or value != value else f"{value:.3f}"
