"""`curate bench`: the pipeline measured side by side with its physical floors (decoding the same frames, copying
the same bytes) and with SigLIP-base, on synthetic LeRobot datasets written through the real writer."""

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from curate import lerobot_io
from curate.errors import CurateError
from curate.index import Index, ScoreRow
from curate.outputs import workspace
from curate.records import EpisodeData
from curate.batches import decode_batch
from curate.sampling import Sampling
from curate.scoring import ScoreConfig, prepare, score_dataset

TASKS = ("Open a drawer", "Press a button from the top", "Open a door with a revolving joint", "Reach a goal position")
CAMERA = "observation.images.front"


@dataclass(frozen=True)
class BenchConfig:
    """`curate bench`: sizes (`--quick` shrinks every one), where the synthetic data lives, which model."""

    out: Path = Path("data/bench")
    quick: bool = False
    model: str | None = None
    size: int = 224  # camera resolution of the synthetic videos (LeRobot datasets are commonly 224 to 480x640)
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    episodes: int = 24  # in the small dataset; the large one has 10x
    length: int = 60  # frames per episode
    index_rows: int = 1_000_000
    train_steps: int = 60

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 1024:
            raise CurateError(f"--size must be between 32 and 1024 pixels, got {self.size}")
        for name in ("episodes", "length", "index_rows", "train_steps"):
            if getattr(self, name) < 1:
                raise CurateError(f"benchmark size {name} must be positive, got {getattr(self, name)}")


QUICK_SIZES = {"episodes": 8, "length": 40, "index_rows": 100_000, "train_steps": 10}  # `curate bench --quick`


def synthetic_episode(episode: int, length: int, size: int) -> EpisodeData:
    """A square sliding over a gradient (some texture for the video codec), with state, action and success labels."""
    rng = np.random.default_rng(episode)
    background = np.linspace(30, 200, size, dtype=np.float32)[None, :, None] * np.ones((size, 1, 3), np.float32)
    frames = np.empty((length, size, size, 3), np.uint8)
    for t in range(length):
        image = background + rng.normal(0, 4, (size, size, 3))
        x = int((size - size // 6) * t / max(length - 1, 1))
        image[size // 3 : size // 2, x : x + size // 6] = (240, 60 + 40 * (episode % 4), 30)
        frames[t] = image.clip(0, 255).astype(np.uint8)
    success = np.zeros(length, bool)
    if episode % 3:
        success[int(length * (0.5 if episode % 3 == 1 else 0.8)) :] = True
    arrays = {
        "observation.state": rng.normal(size=(length, 39)).astype(np.float32),
        "action": rng.uniform(-1, 1, (length, 4)).astype(np.float32),
        "next.reward": np.linspace(0, 1, length, dtype=np.float32),
        "next.success": success,
        CAMERA: frames,
    }
    return EpisodeData(task=TASKS[episode % len(TASKS)], arrays=arrays)


def bench_dataset(root: Path, episodes: int, length: int, size: int) -> Path:
    """Written once through `lerobot_io.write_dataset` and reused while its spec matches."""
    spec = {"episodes": episodes, "length": length, "size": size, "version": 1}
    stamp = root.parent / f"{root.name}.json"
    if root.exists() and stamp.exists() and json.loads(stamp.read_text()) == spec:
        return root
    lerobot_io.write_dataset(root, (synthetic_episode(e, length, size) for e in range(episodes)), fps=20, camera_keys=[CAMERA], overwrite=True)
    stamp.write_text(json.dumps(spec))
    return root


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def score_vs_decode(dataset: Path, model: str | None, work: Path, rounds: int = 3) -> dict[str, float]:
    """Episodes/s of `curate score` (a fresh index each round) and of decoding the very same frames in the same
    batches, no model: the best of `rounds` rounds of each, alternating, so one slow moment of a shared machine does
    not decide the ratio. The first round's index is `work/score.duckdb` (the export benchmark reads it)."""
    job = prepare(ScoreConfig(dataset=str(dataset), index=work / "score.duckdb", model=model))  # the model loads once
    config = job.config
    batches = [job.episodes[s : s + config.batch_size] for s in range(0, len(job.episodes), config.batch_size)]
    decode_all = lambda: [decode_batch(job.ds, b, job.cameras, config.sampling) for b in batches]  # noqa: E731
    decode_all()  # warm the file cache and the decoder for both
    decode_s, score_s = [], []
    for round_ in range(rounds):
        fresh = job if round_ == 0 else replace(job, config=replace(config, index=work / f"score{round_}.duckdb"))
        decode_s.append(_timed(decode_all))
        score_s.append(_timed(lambda: score_dataset(fresh)))  # noqa: B023 (called right away)
    n = len(job.episodes)
    return {"episodes": n, "rounds": rounds, "decode_eps_per_s": n / min(decode_s), "score_eps_per_s": n / min(score_s), "ratio": min(decode_s) / min(score_s)}


def dense_vs_sampled(dataset: Path, model: str | None, work: Path) -> dict[str, float]:
    """Frames scored per second by `curate score --stride 1` (every frame) and by 8-frame scoring, each into a fresh
    index over the same episodes (best of two rounds, alternating, so neither pays the first decode alone): dense
    scoring's cost per frame against sampled scoring's."""
    rates: dict[str, float] = {}
    for round_ in range(2):
        for name, stride in (("sampled", None), ("dense", 1)):
            job = prepare(ScoreConfig(dataset=str(dataset), index=work / f"{name}{round_}.duckdb", model=model, stride=stride))
            seconds = _timed(lambda: score_dataset(job))  # noqa: B023 (called right away)
            frames = sum(e.length if stride else min(e.length, job.config.frames) for e in job.episodes)
            rates[f"{name}_frames_per_s"] = max(rates.get(f"{name}_frames_per_s", 0.0), frames / seconds)
    return rates | {"episodes": len(job.episodes), "ratio": rates["dense_frames_per_s"] / rates["sampled_frames_per_s"]}


def rm_vs_siglip(dataset: Path, model: str | None, quick: bool) -> dict[str, float]:
    """Seconds per episode (8 frames) of the reward model vs SigLIP-base's image tower on the same decoded frames
    (randomly initialised: a trained SigLIP-base costs the same)."""
    from transformers import SiglipConfig, SiglipModel

    from rewardmodel.siglip import Siglip
    from curate.scorers import open_scorer

    ds = lerobot_io.open_dataset(dataset)
    episodes = lerobot_io.list_episodes(ds)[:16]
    frames, _ = decode_batch(ds, episodes, [CAMERA], Sampling(8))
    video = torch.from_numpy(np.stack([frames[e.episode_index][1][CAMERA] for e in episodes]))  # (16, 8, H, W, 3)
    scorer = open_scorer(model)
    instructions = [e.task for e in episodes]
    owners = torch.arange(len(episodes))
    scorer.score(video, instructions, owners)  # warm-up
    rm_s = min(_timed(lambda: scorer.score(video, instructions, owners)) for _ in range(3)) / len(episodes)
    # siglip-base-patch16-224 sizes, through the same resize, normalisation and embedding as `curate retrieve`
    siglip = Siglip(SiglipModel(SiglipConfig()).eval(), tokenizer=None, model_id="siglip-base", source="", device="cpu")
    siglip.embed_images(video[0, :2])  # warm-up
    siglip_s = min(_timed(lambda: siglip.embed_images(video[0])) for _ in range(1 if quick else 3))
    return {"rm_s_per_episode": rm_s, "siglip_base_s_per_episode": siglip_s, "ratio": rm_s / siglip_s}


def index_speed(rows: int, work: Path, batch: int = 50_000) -> dict[str, float]:
    """Synthetic scores for `rows` episodes through the real writer (rows/s), then the rank query (`curate rank
    --top 20`: open the index, check, count, fetch the best 20), those two SQL queries alone, and a filter selection
    (`--top-k 100`) over them (median ms of 5, 3 for the filter)."""
    from curate.export import SelectConfig, select
    from curate.filters import make_filter
    from curate.ranking import ranked

    path = work / "index.duckdb"
    rng = np.random.default_rng(0)
    frame_index = tuple(range(0, 100, 12))
    write_s = 0.0
    with Index(path) as index:
        for start in range(0, rows, batch):
            finals = rng.random(min(batch, rows - start))
            block = [
                ScoreRow("/bench/play", start + i, "Open a drawer", "bench@000000000000", "run", TASKS[(start + i) % 4], 100, float(f),
                         float(f) / 2, float(f), frame_index, tuple(float(f) * j / 8 for j in range(1, 10)), (0.5,) * 9)
                for i, f in enumerate(finals)
            ]
            write_s += _timed(lambda: index.write(block))  # noqa: B023 (called right away)
    rank_ms = statistics.median(_timed(lambda: ranked(path, "Open a drawer", [], None, top=20)) for _ in range(5)) * 1000
    with Index(path, read_only=True) as index:  # the two queries alone, on an open connection (no connect, no checks)
        where = {"instruction": "Open a drawer", "model": "bench@000000000000"}
        sql_ms = statistics.median(_timed(lambda: (index.count(**where), index.scores(**where, limit=20))) for _ in range(5)) * 1000
    config = SelectConfig(index=path, instruction="Open a drawer", filters=(make_filter("top-k", 100),))
    filter_ms = statistics.median(_timed(lambda: select(config)) for _ in range(3)) * 1000
    return {"rows": rows, "write_rows_per_s": rows / write_s, "rank_query_ms": rank_ms, "rank_sql_ms": sql_ms, "filter_select_ms": filter_ms}


def export_vs_copy(dataset: Path, index: Path, work: Path) -> dict[str, float]:
    """MB/s of `curate filter` exporting the best half vs a plain copy of the exported bytes, and the same export
    through lerobot's re-encoding path (`--reencode`) for comparison."""
    from curate.export import ExportConfig, SelectConfig, export, select
    from curate.filters import make_filter

    selection = select(SelectConfig(index=index, instruction=TASKS[0], filters=(make_filter("top-frac", 0.5),)))
    config = ExportConfig(out=work / "export")
    export_s = _timed(lambda: export(selection, config))
    megabytes = sum(f.stat().st_size for f in config.out.rglob("*") if f.is_file()) / 1e6
    copy_s = _timed(lambda: shutil.copytree(config.out, work / "copy"))
    reencode = replace(config, out=work / "reencoded", reencode=True)
    reencode_s = _timed(lambda: export(selection, reencode))
    return {"episodes": len(selection.kept), "megabytes": megabytes, "export_s": export_s, "copy_s": copy_s, "reencode_s": reencode_s,
            "export_mb_per_s": megabytes / export_s, "copy_mb_per_s": megabytes / copy_s, "ratio": copy_s / export_s, "reencode_ratio": copy_s / reencode_s}


def _peak_scoring_rss_mb(dataset: Path, model: str | None, index: Path) -> float:
    """Peak resident memory of a fresh process that scores the dataset (what a user's `curate score` costs)."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from curate.scoring import ScoreConfig, prepare, score_dataset\n"
        "model = sys.argv[3] or None\n"
        "score_dataset(prepare(ScoreConfig(dataset=sys.argv[1], index=Path(sys.argv[2]), model=model)))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(dataset), str(index), model or ""], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise CurateError(f"the memory probe failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return int(result.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def memory_growth(small: Path, large: Path, model: str | None, work: Path) -> dict[str, float]:
    small_mb = _peak_scoring_rss_mb(small, model, work / "mem_small.duckdb")
    large_mb = _peak_scoring_rss_mb(large, model, work / "mem_large.duckdb")
    return {"small_episodes": len(lerobot_io.list_episodes(lerobot_io.open_dataset(small))), "small_peak_mb": small_mb,
            "large_episodes": len(lerobot_io.list_episodes(lerobot_io.open_dataset(large))), "large_peak_mb": large_mb, "ratio": large_mb / small_mb}


def train_speed(dataset: Path, steps: int) -> dict[str, float]:
    """Reward-model training pairs/s (compact backbone, batch 16, the shipped model's settings) after data loading."""
    from curate.rm_data import load_trajectories
    from rewardmodel.config import CurateRewardConfig
    from rewardmodel.train import TrainConfig, train

    trajectories = load_trajectories(dataset, 64)
    _, history = train(trajectories, CurateRewardConfig(), TrainConfig(steps=steps, batch_size=16, warmup_steps=1))
    return {"steps": steps, "samples_per_s": history[-1]["samples_per_s"]}


TARGETS = {  # summary key: (what it is, its goal as a test or None, the goal in words)
    "score_vs_decode": ("scoring vs decode-only floor (throughput ratio)", lambda v: v >= 0.8, ">= 0.8"),
    "rm_vs_siglip_cost": ("reward model vs SigLIP-base per-episode cost", lambda v: v <= 0.25, "<= 0.25"),
    "dense_vs_sampled": ("dense (every frame) vs 8-frame scoring, frames/s (ratio)", lambda v: v >= 0.5, ">= 0.5"),
    "index_rows": ("scored episodes in the synthetic index (the goal below is for 1,000,000)", None, ""),
    "rank_query_ms": ("rank query over the synthetic index (ms)", lambda v: v < 50, "< 50 ms"),
    "write_rows_per_s": ("index write throughput (rows/s)", None, ""),
    "export_vs_copy": ("export vs plain copy of the same bytes (throughput ratio)", lambda v: v >= 0.5, ">= 0.5"),
    "reencode_vs_copy": ("--reencode export vs plain copy (throughput ratio)", None, ""),
    "memory_growth_10x": ("peak memory, 10x the episodes (ratio)", lambda v: v <= 1.2, "flat (<= 1.2)"),
    "train_samples_per_s": ("reward-model training (pairs/s)", None, ""),
}


def run_bench(config: BenchConfig, say: Callable[[str], None] = lambda message: None) -> dict:
    """Every measurement; returns {"summary": {key: number}, "details": {...}} (summary keys as in TARGETS)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    workspace(config.out)
    say("writing the synthetic datasets")
    small = bench_dataset(config.out / f"small_{config.episodes}x{config.length}_{config.size}px", config.episodes, config.length, config.size)
    large = bench_dataset(config.out / f"large_{10 * config.episodes}x{config.length}_{config.size}px", 10 * config.episodes, config.length, config.size)
    details: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=config.out) as tmp:
        work = Path(tmp)
        say("scoring vs decoding")
        details["score_vs_decode"] = score_vs_decode(large, config.model, work)
        say("dense vs sampled scoring")
        details["dense_vs_sampled"] = dense_vs_sampled(small, config.model, work)
        say("reward model vs SigLIP-base")
        details["rm_vs_siglip"] = rm_vs_siglip(small, config.model, config.quick)
        say(f"index: writing {config.index_rows:,} rows and querying them")
        details["index"] = index_speed(config.index_rows, work)
        say("export vs copy")
        details["export_vs_copy"] = export_vs_copy(large, work / "score.duckdb", work)
        say("peak memory of scoring 1x and 10x episodes")
        details["memory"] = memory_growth(small, large, config.model, work)
        say("reward-model training")
        details["train"] = train_speed(small, config.train_steps)
    summary = {
        "score_vs_decode": details["score_vs_decode"]["ratio"],
        "rm_vs_siglip_cost": details["rm_vs_siglip"]["ratio"],
        "dense_vs_sampled": details["dense_vs_sampled"]["ratio"],
        "index_rows": details["index"]["rows"],
        "rank_query_ms": details["index"]["rank_query_ms"],
        "write_rows_per_s": details["index"]["write_rows_per_s"],
        "export_vs_copy": details["export_vs_copy"]["ratio"],
        "reencode_vs_copy": details["export_vs_copy"]["reencode_ratio"],
        "memory_growth_10x": details["memory"]["ratio"],
        "train_samples_per_s": details["train"]["samples_per_s"],
    }
    return {"summary": summary, "details": details, "quick": config.quick, "size": config.size, "torch_threads": torch.get_num_threads(),
            "peak_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
