"""`curate score`: every episode x instruction through a reward model into the index, batched, resumable."""

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from curate import lerobot_io
from curate.batches import Decoded, batch_results, decode_batch
from curate.errors import CurateError
from curate.index import DatasetRecord, FailureRow, Index, ModelRecord
from curate.outputs import check_apart
from curate.records import EpisodeInfo
from curate.sampling import Sampling
from curate.scorers import Scorer, open_scorer


ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ScoreConfig:
    """`curate score`: what to score, with which model, into which index."""

    dataset: str
    index: Path = Path("curate.duckdb")
    model: str | None = None
    instructions: tuple[str, ...] = ()
    camera: str | None = None  # a key, its last part, or "all" (every camera, combined by `batches.combine`)
    frames: int = 8
    batch_size: int = 16
    device: str = "cpu"
    engine: str = "local"  # local: this process (decoding overlapped in a thread); ray: Ray actors
    address: str | None = None  # a Ray cluster to join (default: start a local one)
    workers: int = 2  # Ray actors
    rescore: bool = False  # replace scores made with another camera, frame count or stride
    stride: int | None = None  # dense: score every stride-th frame (and the last), not `frames` sampled ones

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.frames, self.stride)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise CurateError(f"unknown --engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.workers < 1:
            raise CurateError(f"--workers must be at least 1, got {self.workers}")
        if not 1 <= self.frames <= 32:
            raise CurateError(f"--frames must be between 1 and 32, got {self.frames}")
        if self.stride is not None and self.stride < 1:
            raise CurateError(f"--stride must be at least 1 (1: every frame), got {self.stride}")
        if self.batch_size < 1:
            raise CurateError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise CurateError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise CurateError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
        if any(not i.strip() for i in self.instructions):
            raise CurateError("an --instruction is empty; give the task in words, e.g. --instruction 'open the drawer'")


@dataclass
class ScoreSummary:
    dataset: str
    model: str
    camera: str
    scored: int = 0
    skipped: int = 0  # already in the index
    rescored: int = 0  # replaced because they were made with another camera or frame count
    failed: list[FailureRow] = field(default_factory=list)


@dataclass(frozen=True)
class ScoringJob:
    """An opened dataset, its cameras and the model: everything that can fail on bad input, checked up front."""

    config: ScoreConfig
    ds: object  # LeRobotDataset
    root: Path
    fingerprint: str
    camera: str  # the cameras' keys joined by "+"
    cameras: tuple[str, ...]
    scorer: Scorer
    episodes: list[EpisodeInfo]
    todo: dict[int, list[str]]  # per episode, the instructions to score
    skipped: int  # already in the index with the same settings
    rescored: int  # in the index with other settings, replaced (--rescore)


def prepare(config: ScoreConfig) -> ScoringJob:
    if config.engine == "ray":
        from curate import ray_engine

        ray_engine.check(config.address)
    ds = lerobot_io.open_dataset(config.dataset)
    root = lerobot_io.dataset_root(ds)
    check_apart(config.index, [root])  # the index is written: never inside the dataset
    cameras = lerobot_io.resolve_cameras(ds, config.camera)
    camera = "+".join(cameras)  # what the run and the settings check call them
    scorer = open_scorer(config.model, config.device)
    if config.stride is not None and scorer.dense is None:
        raise CurateError(f"--stride needs a curate reward model (`curate rm train` or the shipped default); {scorer.model_id} scores sampled frames only: drop --stride")
    episodes = lerobot_io.list_episodes(ds)
    fingerprint = lerobot_io.dataset_fingerprint(root)
    todo, skipped, rescored = _plan(config, str(root), fingerprint, camera, scorer.model_id, episodes)
    return ScoringJob(config, ds, root, fingerprint, camera, cameras, scorer, episodes, todo, skipped, rescored)


def _plan(config: ScoreConfig, dataset: str, fingerprint: str, camera: str, model: str, episodes: list[EpisodeInfo]) -> tuple[dict[int, list[str]], int, int]:
    """What the index lacks: (episode -> instructions to score, how many are there already, how many get replaced).
    Scores from another camera or frame count are not "there": the run refuses unless --rescore replaces them."""
    done: dict = {}
    if Path(config.index).exists():
        with Index(config.index, read_only=True) as index:
            index.check_unchanged(dataset, fingerprint)
            done = index.done(dataset, model)
    settings = (camera, config.frames, config.stride)
    todo: dict[int, list[str]] = {}
    skipped = 0
    other: dict[tuple[str | None, int | None, int | None], int] = defaultdict(int)  # scored before with other settings
    for episode in episodes:
        wanted = list(dict.fromkeys([episode.task, *config.instructions]))
        missing = []
        for instruction in wanted:
            before = done.get((episode.episode_index, instruction))
            if before is not None and before != settings:
                other[before] += 1
            if before is None or (before != settings and config.rescore):
                missing.append(instruction)
        skipped += len(wanted) - len(missing)
        if missing:
            todo[episode.episode_index] = missing
    if other and not config.rescore:
        old_camera, old_frames, old_stride = max(other, key=other.__getitem__)  # the most common earlier settings
        raise CurateError(
            f"{sum(other.values())} of these scores are already in {Path(config.index).resolve()} from camera {old_camera} with {Sampling(old_frames, old_stride).describe() if old_frames else 'unknown settings'}, "
            f"not {camera} with {config.sampling.describe()}; pass --rescore to replace them, or score into another --index"
        )
    return todo, skipped, sum(other.values())


def score_dataset(job: ScoringJob, on_progress: Callable[[int, int], None] | None = None) -> ScoreSummary:
    """Score every (episode, instruction) the job planned; `on_progress(done, total)` after each batch, in episodes
    (each under all its instructions)."""
    config, ds, camera, scorer, episodes, todo = job.config, job.ds, job.camera, job.scorer, job.episodes, job.todo
    dataset = str(job.root)
    summary = ScoreSummary(dataset, scorer.model_id, camera, skipped=job.skipped, rescored=job.rescored)
    total = len(todo)
    if on_progress is not None:
        on_progress(0, total)
    if not todo:
        return summary
    registered = DatasetRecord(dataset, job.fingerprint, len(episodes), ds.fps, lerobot_io.camera_keys(ds))
    model = ModelRecord(scorer.model_id, scorer.kind, scorer.source, scorer.checkpoint_hash, scorer.config)
    with Index(config.index) as index, index.run(registered, model, camera, config.frames, config.instructions, config.stride) as run_id:
        by_index = {e.episode_index: e for e in episodes}
        batches = [[by_index[i] for i in list(todo)[s : s + config.batch_size]] for s in range(0, len(todo), config.batch_size)]
        if config.engine == "ray":
            from curate.ray_engine import ray_results

            results = ray_results(job, batches, todo, run_id)
        else:
            results = (batch_results(scorer, batch, decoded, todo, dataset, run_id, config.sampling) for batch, decoded in zip(batches, _prefetch(ds, batches, job.cameras, config.sampling), strict=True))
        finished = 0
        for rows, failures in results:  # one writer, whichever engine scored
            index.write(rows, failures)
            summary.scored += len(rows)
            summary.failed += failures
            finished += len({r.episode_index for r in rows} | {f.episode_index for f in failures})
            if on_progress is not None:
                on_progress(finished, total)
    return summary


def _prefetch(ds, batches: list[list[EpisodeInfo]], cameras: tuple[str, ...], sampling: Sampling) -> Iterator[Decoded]:
    """Decode batch i+1 in a thread while the model works on batch i."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decode_batch, ds, batches[0], cameras, sampling)
        for i in range(len(batches)):
            result = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(decode_batch, ds, batches[i + 1], cameras, sampling)
            yield result
