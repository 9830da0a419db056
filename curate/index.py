"""The DuckDB index: schema with provenance, transactional writes of scored episodes, and the queries on them."""

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from curate.errors import CurateError

SCHEMA_VERSION = 3  # 2: scores.match_prob; 3: runs.stride, camera_scores (older indexes are migrated when opened for writing)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY, fingerprint VARCHAR, episodes INTEGER, fps INTEGER, cameras VARCHAR[], added VARCHAR);
CREATE TABLE IF NOT EXISTS models (
    model VARCHAR PRIMARY KEY, kind VARCHAR, source VARCHAR, checkpoint_hash VARCHAR, config VARCHAR, added VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR, model VARCHAR, camera VARCHAR, frames INTEGER,
    instructions VARCHAR[], code_version VARCHAR, started VARCHAR, finished VARCHAR, stride INTEGER);
CREATE TABLE IF NOT EXISTS scores (
    dataset VARCHAR, episode_index INTEGER, instruction VARCHAR, model VARCHAR, run_id VARCHAR,
    task VARCHAR, length INTEGER, final_progress DOUBLE, mean_progress DOUBLE, success_prob DOUBLE,
    frame_index INTEGER[], frame_progress DOUBLE[], frame_success DOUBLE[], match_prob DOUBLE,
    PRIMARY KEY (dataset, episode_index, instruction, model));
CREATE TABLE IF NOT EXISTS camera_scores (
    dataset VARCHAR, episode_index INTEGER, instruction VARCHAR, model VARCHAR, camera VARCHAR, run_id VARCHAR,
    final_progress DOUBLE, success_prob DOUBLE, match_prob DOUBLE, frame_progress DOUBLE[],
    PRIMARY KEY (dataset, episode_index, instruction, model, camera));
CREATE TABLE IF NOT EXISTS failures (
    dataset VARCHAR, episode_index INTEGER, instruction VARCHAR, model VARCHAR, run_id VARCHAR, reason VARCHAR,
    PRIMARY KEY (dataset, episode_index, instruction, model));
CREATE TABLE IF NOT EXISTS retrievals (
    dataset VARCHAR, episode_index INTEGER, query VARCHAR, model VARCHAR, run_id VARCHAR, task VARCHAR, length INTEGER,
    similarity DOUBLE, PRIMARY KEY (dataset, episode_index, query, model));
CREATE OR REPLACE VIEW episode_scores AS
    SELECT dataset, episode_index, instruction, model, final_progress, mean_progress, success_prob,
           frame_index, frame_progress
    FROM scores;
"""


SCORE_ARROW = pa.schema([
    ("dataset", pa.string()), ("episode_index", pa.int32()), ("instruction", pa.string()), ("model", pa.string()),
    ("run_id", pa.string()), ("task", pa.string()), ("length", pa.int32()), ("final_progress", pa.float64()),
    ("mean_progress", pa.float64()), ("success_prob", pa.float64()), ("frame_index", pa.list_(pa.int32())),
    ("frame_progress", pa.list_(pa.float64())), ("frame_success", pa.list_(pa.float64())), ("match_prob", pa.float64()),
])  # the scores table's columns, in order
CAMERA_ARROW = pa.schema([
    ("dataset", pa.string()), ("episode_index", pa.int32()), ("instruction", pa.string()), ("model", pa.string()),
    ("camera", pa.string()), ("run_id", pa.string()), ("final_progress", pa.float64()), ("success_prob", pa.float64()),
    ("match_prob", pa.float64()), ("frame_progress", pa.list_(pa.float64())),
])  # the camera_scores table's columns, in order
FAILURE_ARROW = pa.schema([(n, pa.int32() if n == "episode_index" else pa.string()) for n in ("dataset", "episode_index", "instruction", "model", "run_id", "reason")])
RETRIEVAL_ARROW = pa.schema([
    ("dataset", pa.string()), ("episode_index", pa.int32()), ("query", pa.string()), ("model", pa.string()),
    ("run_id", pa.string()), ("task", pa.string()), ("length", pa.int32()), ("similarity", pa.float64()),
])


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as the index registers it."""

    dataset: str
    fingerprint: str
    episodes: int
    fps: int
    cameras: Sequence[str]


@dataclass(frozen=True)
class ModelRecord:
    """A model as the index registers it."""

    model: str
    kind: str
    source: str
    checkpoint_hash: str
    config: dict


@dataclass(frozen=True)
class CameraScore:
    """What one camera said about a row scored with several (`curate score --camera all`)."""

    camera: str
    final_progress: float
    success_prob: float
    match_prob: float | None
    frame_progress: tuple[float, ...]


@dataclass(frozen=True)
class ScoreRow:
    """One scored (dataset, episode, instruction, model)."""

    dataset: str
    episode_index: int
    instruction: str
    model: str
    run_id: str
    task: str
    length: int
    final_progress: float
    mean_progress: float
    success_prob: float
    frame_index: tuple[int, ...]
    frame_progress: tuple[float, ...]
    frame_success: tuple[float, ...]
    match_prob: float | None = None  # how well the instruction fits the episode's task (models with a match head)
    cameras: tuple[CameraScore, ...] = ()  # per camera, when the row combines several

    def __post_init__(self) -> None:
        n = len(self.frame_index)
        assert len(self.frame_progress) == n and len(self.frame_success) == n, "per-frame lists must have one length"
        assert list(self.frame_index) == sorted(set(self.frame_index)), "frame_index must be ascending and unique"


@dataclass(frozen=True)
class RetrievalRow:
    """One episode's similarity to a retrieval query (a text, or `demo:EP,...`) under a SigLIP model."""

    dataset: str
    episode_index: int
    query: str
    model: str
    run_id: str
    task: str
    length: int
    similarity: float


@dataclass(frozen=True)
class FailureRow:
    dataset: str
    episode_index: int
    instruction: str
    model: str
    run_id: str
    reason: str


# The ranking rule of rank, filter and report: an episode must both fit the instruction's task (match probability,
# from models with a match head; 1 where there is none) and get far (final progress). docs/index.md explains it.
SELECTION_SCORE = "final_progress * coalesce({match}, 1.0)"


def _key(row: "ScoreRow") -> dict:
    return {"dataset": row.dataset, "episode_index": row.episode_index, "instruction": row.instruction, "model": row.model}


def _same_key(table: str, text: str = "instruction") -> str:
    """Rows of `table` with the key of a row of `incoming`; `text` is the key's text column (instruction or query)."""
    return " AND ".join(f"{table}.{c} = incoming.{c}" for c in ("dataset", "episode_index", text, "model"))


class Index:
    """A DuckDB file holding scores. One writer process at a time (DuckDB locks the file)."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path).expanduser().resolve()
        if read_only and not self.path.exists():
            raise CurateError(f"index {self.path} does not exist; run `curate score DATASET --index {self.path}` first")
        try:
            self.db = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as err:
            if "lock" in str(err).lower():
                holder = re.search(r"PID (\d+)", str(err))
                who = f" (process {holder.group(1)})" if holder else ""
                raise CurateError(f"index {self.path} is in use by another curate process{who}; wait for it to finish or pass another --index") from None
            raise CurateError(f"cannot open index {self.path}: {err}") from None
        except duckdb.Error as err:
            raise CurateError(f"{self.path} is not a DuckDB index ({type(err).__name__}); pass another --index") from None
        if not read_only:
            self._migrate()
        else:
            self._check_version()
        columns = {r[0] for r in self.db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'scores'").fetchall()}
        self._match = "match_prob" if "match_prob" in columns else "CAST(NULL AS DOUBLE)"  # a version 1 index, read only
        run_columns = {r[0] for r in self.db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'").fetchall()}
        self._stride = "r.stride" if "stride" in run_columns else "CAST(NULL AS INTEGER)"  # before version 3: none dense
        self._has_cameras = bool(self.db.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'camera_scores'").fetchone())

    def _check_version(self) -> None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException:
            raise CurateError(f"{self.path} is not a curate index (no meta table); pass another --index") from None
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise CurateError(f"index {self.path} was written by a newer curate (schema {row[0]}, this one reads {SCHEMA_VERSION}); upgrade curate")

    def _migrate(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if tables and "meta" not in tables:
            raise CurateError(f"{self.path} is a DuckDB file but not a curate index; pass another --index")
        if "meta" in tables:
            self._check_version()
        if "scores" in tables:  # version 1 had no match_prob: NULL for its rows, ranked on progress alone
            self.db.execute("ALTER TABLE scores ADD COLUMN IF NOT EXISTS match_prob DOUBLE")
        if "runs" in tables:  # before version 3 no run was dense
            self.db.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS stride INTEGER")
        self.db.execute(SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- provenance --------------------------------------------------------------------------------------------
    def add_dataset(self, dataset: str, fingerprint: str, episodes: int, fps: int, cameras: Sequence[str], added: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?)", [dataset, fingerprint, episodes, fps, list(cameras), added]
        )

    def fingerprint(self, dataset: str) -> str | None:
        row = self.db.execute("SELECT fingerprint FROM datasets WHERE dataset = ?", [dataset]).fetchone()
        return None if row is None else str(row[0])

    def check_unchanged(self, dataset: str, fingerprint: str) -> None:
        """The dataset at this path is the one this index holds results for (or one it has not seen)."""
        if self.fingerprint(dataset) not in (None, fingerprint):
            raise CurateError(f"dataset {dataset} changed since it was scored into {self.path}; score it into a new --index (or delete the old one)")

    @contextlib.contextmanager
    def run(self, dataset: "DatasetRecord", model: "ModelRecord", camera: str, frames: int, instructions: Sequence[str], stride: int | None = None) -> Iterator[str]:
        """Register the dataset and model, open a run and yield its id; the run is marked finished when the block
        completes (an interrupted run stays unfinished; its written rows count as done)."""
        from curate import provenance

        self.check_unchanged(dataset.dataset, dataset.fingerprint)
        run_id, now = uuid.uuid4().hex, provenance.now()
        self.add_dataset(dataset.dataset, dataset.fingerprint, dataset.episodes, dataset.fps, dataset.cameras, now)
        self.add_model(model.model, model.kind, model.source, model.checkpoint_hash, model.config, now)
        self.start_run(run_id, dataset.dataset, model.model, camera, frames, stride, instructions, provenance.code_version(), now)
        yield run_id
        self.finish_run(run_id, provenance.now())

    def add_model(self, model: str, kind: str, source: str, checkpoint_hash: str, config: dict, added: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?)", [model, kind, source, checkpoint_hash, json.dumps(config), added]
        )

    def start_run(self, run_id: str, dataset: str, model: str, camera: str, frames: int, stride: int | None, instructions: Sequence[str], code_version: str, started: str) -> None:
        self.db.execute(
            "INSERT INTO runs (run_id, dataset, model, camera, frames, stride, instructions, code_version, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, dataset, model, camera, frames, stride, list(instructions), code_version, started],
        )

    def finish_run(self, run_id: str, finished: str) -> None:
        self.db.execute("UPDATE runs SET finished = ? WHERE run_id = ?", [finished, run_id])

    # --- scores ------------------------------------------------------------------------------------------------
    def done(self, dataset: str, model: str) -> dict[tuple[int, str], tuple[str | None, int | None, int | None]]:
        """(episode, instruction) pairs already scored for this dataset and model (failed ones are retried), each with
        the camera, frame count and stride its run used (None where no run recorded them; stride None: not dense)."""
        rows = self.db.execute(
            f"SELECT s.episode_index, s.instruction, r.camera, r.frames, {self._stride} FROM scores s LEFT JOIN runs r USING (run_id)"
            " WHERE s.dataset = ? AND s.model = ?", [dataset, model]
        ).fetchall()
        return {(int(e), str(i)): (c, None if f is None else int(f), None if k is None else int(k)) for e, i, c, f, k in rows}

    def write(self, rows: Iterable[ScoreRow], failures: Iterable[FailureRow] = ()) -> None:
        """Insert one batch in one transaction: a killed run leaves whole batches or nothing of them. Rows travel as
        one Arrow table (row-by-row inserts run at tens of rows per second)."""
        rows = list(rows)
        scores = pa.Table.from_pylist([{k: v for k, v in r.__dict__.items() if k != "cameras"} for r in rows], schema=SCORE_ARROW)
        cameras = pa.Table.from_pylist([{**_key(r), "camera": c.camera, "run_id": r.run_id, "final_progress": c.final_progress, "success_prob": c.success_prob,
                                          "match_prob": c.match_prob, "frame_progress": c.frame_progress} for r in rows for c in r.cameras], schema=CAMERA_ARROW)
        failed = pa.Table.from_pylist([f.__dict__ for f in failures], schema=FAILURE_ARROW)
        with self._transaction():
            if scores.num_rows:
                self._replace("scores", scores)
                self.db.execute(f"DELETE FROM failures USING incoming WHERE {_same_key('failures')}")  # retried and now scored
                self.db.execute(f"DELETE FROM camera_scores USING incoming WHERE {_same_key('camera_scores')}")  # a rescore's cameras replace these
                self.db.unregister("incoming")
            if cameras.num_rows:
                self.db.register("incoming", cameras)
                self.db.execute("INSERT INTO camera_scores SELECT * FROM incoming")
                self.db.unregister("incoming")
            if failed.num_rows:
                self._replace("failures", failed)
                self.db.unregister("incoming")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _replace(self, table: str, rows: pa.Table, text: str = "instruction") -> None:
        """Delete the rows' keys, then insert (DuckDB's INSERT OR REPLACE is ~20x slower in bulk). Leaves `incoming`
        registered for the caller."""
        self.db.register("incoming", rows)
        self.db.execute(f"DELETE FROM {table} USING incoming WHERE {_same_key(table, text)}")
        self.db.execute(f"INSERT INTO {table} SELECT * FROM incoming")

    @staticmethod
    def _where(text_column: str, text: str | None, datasets: Sequence[str], model: str | None, own_task: bool = False) -> tuple[str, list]:
        """The WHERE clause and its parameters; `text_column` is `instruction` (scores) or `query` (retrievals)."""
        where, params = [], []
        if text is not None:
            where.append(f"{text_column} = ?")
            params.append(text)
        if own_task:
            where.append("instruction = task")
        if datasets:
            where.append(f"dataset IN ({', '.join('?' * len(datasets))})")
            params += list(datasets)
        if model is not None:
            where.append("model = ?")
            params.append(model)
        return (f" WHERE {' AND '.join(where)}" if where else ""), params

    def scores(
        self,
        instruction: str | None = None,
        datasets: Sequence[str] = (),
        model: str | None = None,
        own_task: bool = False,
        limit: int | None = None,
        worst_first: bool = False,
        frames: bool = True,
    ) -> pd.DataFrame:
        """Scored episodes (with task and length), best final progress first (or worst first); `own_task`: only rows
        scored under the episode's own task; `limit`: only the first N (sorted and cut inside DuckDB); `frames`: with
        the per-frame lists (the slow part of fetching a million rows)."""
        where, params = self._where("instruction", instruction, datasets, model, own_task)
        order = "selection_score DESC, final_progress DESC, success_prob DESC, dataset, episode_index"
        if worst_first:
            order = "selection_score ASC, final_progress ASC, success_prob ASC, dataset DESC, episode_index DESC"
        sql = (
            "SELECT dataset, episode_index, instruction, model, task, length, final_progress, mean_progress, success_prob,"
            f" {self._match} AS match_prob, {SELECTION_SCORE.format(match=self._match)} AS selection_score"
            + (", frame_index, frame_progress, frame_success" if frames else "") + f" FROM scores{where} ORDER BY {order}" + (" LIMIT ?" if limit is not None else "")
        )
        return self.db.execute(sql, params + ([limit] if limit is not None else [])).fetchdf()

    def camera_scores(self, instruction: str | None = None, datasets: Sequence[str] = (), model: str | None = None) -> pd.DataFrame:
        """What each camera said, for rows scored with several (empty for an index from before camera_scores)."""
        if not self._has_cameras:
            return pd.DataFrame(columns=list(CAMERA_ARROW.names))
        where, params = self._where("instruction", instruction, datasets, model)
        return self.db.execute(f"SELECT * FROM camera_scores{where} ORDER BY dataset, episode_index, camera", params).fetchdf()

    def count(self, instruction: str | None = None, datasets: Sequence[str] = (), model: str | None = None, own_task: bool = False) -> int:
        where, params = self._where("instruction", instruction, datasets, model, own_task)
        return int(self.db.execute(f"SELECT count(*) FROM scores{where}", params).fetchone()[0])

    def failures(self) -> pd.DataFrame:
        return self.db.execute("SELECT * FROM failures ORDER BY dataset, episode_index").fetchdf()

    def models(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT model FROM scores ORDER BY model").fetchall()]

    def has_instruction(self, instruction: str) -> bool:
        return self.db.execute("SELECT 1 FROM scores WHERE instruction = ? LIMIT 1", [instruction]).fetchone() is not None

    # --- retrieval -----------------------------------------------------------------------------------------------
    def write_retrievals(self, rows: Iterable[RetrievalRow]) -> None:
        """Replace the query's rankings in one transaction."""
        with self._transaction():
            self._replace("retrievals", pa.Table.from_pylist([r.__dict__ for r in rows], schema=RETRIEVAL_ARROW), "query")
            self.db.unregister("incoming")

    def retrievals(self, query: str, datasets: Sequence[str] = (), model: str | None = None) -> pd.DataFrame:
        """Retrieved episodes for a query, most similar first."""
        where, params = self._where("query", query, datasets, model)
        sql = f"SELECT dataset, episode_index, query, model, task, length, similarity FROM retrievals{where} ORDER BY similarity DESC, dataset, episode_index"
        return self.db.execute(sql, params).fetchdf()

    def retrieval_models(self, query: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT model FROM retrievals WHERE query = ? ORDER BY model", [query]).fetchall()]
