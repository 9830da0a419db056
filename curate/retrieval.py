"""SigLIP retrieval, the baseline way to select: embed sampled frames of every episode with a SigLIP model, keep the
vectors in a faiss index beside the DuckDB index, and rank episodes by similarity to a text or demonstration query."""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.index import DatasetRecord, Index, ModelRecord, RetrievalRow
from curate.outputs import atomic_folder, check_apart
from curate.records import EpisodeInfo
from curate.sampling import frame_indices
from rewardmodel.siglip import Siglip, SiglipTrainConfig, make_tokenizer, train_small_siglip

DEFAULT_SIGLIP = "google/siglip-base-patch16-224"  # the real default where the hub is reachable
AGGREGATES = ("mean", "max")


def open_siglip(source: str | None = None, device: str = "cpu") -> Siglip:
    """A SigLIP checkpoint by local folder (e.g. from `curate retrieve train`) or hub id."""
    from transformers import AutoTokenizer, SiglipConfig, SiglipModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    source = source or DEFAULT_SIGLIP
    path = Path(source).expanduser()
    location = str(path.resolve()) if path.is_dir() else source
    try:
        kind = SiglipConfig.get_config_dict(location)[0].get("model_type") or "non-transformers"
        config = SiglipConfig.from_pretrained(location)
    except (OSError, ValueError) as err:
        hint = "train one offline with `curate retrieve train DATASET --out DIR` and pass --model DIR"
        raise CurateError(f"cannot load SigLIP model {source!r} ({type(err).__name__}); {hint}") from None
    if kind != "siglip":
        raise CurateError(f"{source} is a {kind} checkpoint, not SigLIP; pass a SigLIP folder or hub id")
    try:
        model = SiglipModel.from_pretrained(location).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise CurateError(f"SigLIP checkpoint {source!r} is incomplete or corrupt ({err}); retrain or re-download it") from None
    weights = path / "model.safetensors"
    digest = provenance.file_sha256(weights)[:12] if weights.is_file() else str(getattr(config, "_commit_hash", None) or "hub")[:12]
    name = path.resolve().name if path.is_dir() else source
    return Siglip(model, tokenizer, f"siglip:{name}@{digest}", location, device)


# --- training a small SigLIP offline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrieveTrainConfig:
    """`curate retrieve train`: a small SigLIP trained from scratch on frames and their episodes' task strings."""

    datasets: tuple[str, ...]
    out: Path
    model: SiglipTrainConfig = SiglipTrainConfig()  # the model's size and its optimisation
    camera: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.datasets:
            raise CurateError("no training dataset; pass at least one DATASET")


def train_siglip(config: RetrieveTrainConfig, on_step: Callable[[int, float], None] | None = None) -> Path:
    """Train a small SigLIP on the datasets' frames and their episodes' task strings (rewardmodel/siglip.py) and save
    it as a SigLIP folder that `open_siglip` loads."""
    from curate.rm_data import load_trajectories
    from policies.metaworld_sim import task_descriptions

    cameras = [config.camera] if config.camera else None
    trajectories = [t for d in config.datasets for t in load_trajectories(d, config.model.image_size, cameras)]
    instructions = sorted({t.instruction for t in trajectories})
    if len(instructions) < 2:
        raise CurateError("retrieval training needs episodes of at least two tasks (negatives come from other tasks)")
    frames = torch.from_numpy(np.concatenate([t.frames for t in trajectories]))
    labels = np.concatenate([[instructions.index(t.instruction)] * len(t.frames) for t in trajectories])
    tokenizer = make_tokenizer(instructions + list(task_descriptions().values()))  # every MT50 instruction: queries share its words
    model, history = train_small_siglip(frames, labels, instructions, tokenizer, config.model, on_step)
    with atomic_folder(config.out, config.overwrite, inputs=config.datasets) as partial:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        log = {"datasets": [str(Path(d).resolve()) for d in config.datasets], "frames": len(frames), "instructions": instructions,
               "config": {"camera": config.camera, **config.model.__dict__}, "code_version": provenance.code_version(),
               "created": provenance.now(), "history": history[:: max(1, len(history) // 200)]}
        (partial / "training.json").write_text(json.dumps(log, indent=1))
    return config.out


# --- frame vectors in faiss, beside the DuckDB index ---------------------------------------------------------------


@dataclass(frozen=True)
class FrameStore:
    """Every sampled frame's vector of one dataset under one model: faiss inner-product index + its episode of each."""

    index: faiss.Index
    episodes: np.ndarray  # (N,) the episode of each vector


def store_path(index_path: Path, model_id: str, dataset: str, camera: str, frames: int) -> Path:
    key = hashlib.sha256(json.dumps([model_id, dataset, camera, frames]).encode()).hexdigest()[:16]
    return index_path.expanduser().resolve().with_suffix(".faiss") / key


def build_store(siglip: Siglip, ds, episodes: Sequence[EpisodeInfo], camera: str, frames: int, path: Path,
                fingerprint: str, batch_episodes: int = 32, on_progress: Callable[[int, int], None] | None = None) -> FrameStore:
    """Embed the sampled frames of every episode (decoded one batch of episodes at a time) or reuse the store on disk
    when it was built from this very dataset content."""
    meta_path = path / "store.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
        return FrameStore(faiss.read_index(str(path / "frames.faiss")), np.load(path / "episodes.npy"))
    store = faiss.IndexFlatIP(siglip.dim)
    owners = []
    usable = [e for e in episodes if e.length > 0]
    for start in range(0, len(usable), batch_episodes):
        group = usable[start : start + batch_episodes]
        decoded = lerobot_io.decode_frames(ds, [(e.episode_index, frame_indices(e.length, frames)) for e in group], [camera])
        video = torch.from_numpy(np.concatenate([d[camera] for d in decoded]))
        store.add(siglip.embed_images(video))
        owners += [e.episode_index for e, d in zip(group, decoded, strict=True) for _ in range(len(d[camera]))]
        if on_progress is not None:
            on_progress(start + len(group), len(usable))
    with atomic_folder(path, overwrite=True) as partial:
        partial.mkdir()
        faiss.write_index(store, str(partial / "frames.faiss"))
        np.save(partial / "episodes.npy", np.asarray(owners, dtype=np.int64))
        (partial / "store.json").write_text(json.dumps({"fingerprint": fingerprint, "model": siglip.model_id, "camera": camera, "frames": frames, "vectors": store.ntotal}))
    return FrameStore(store, np.asarray(owners, dtype=np.int64))


def episode_similarity(store: FrameStore, queries: np.ndarray, aggregate: str = "mean") -> pd.Series:
    """Per episode: each frame's best similarity to any query vector, aggregated over the episode's frames."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
    assert queries.ndim == 2 and queries.shape[1] == store.index.d, (queries.shape, store.index.d)
    sims, ids = store.index.search(queries.astype(np.float32), store.index.ntotal)  # exhaustive: every frame's score
    per_frame = np.full(store.index.ntotal, -np.inf, dtype=np.float32)
    for row_sims, row_ids in zip(sims, ids, strict=True):
        np.maximum.at(per_frame, row_ids, row_sims)
    return pd.Series(per_frame).groupby(store.episodes).agg(aggregate)


# --- `curate retrieve query` ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrieveConfig:
    """`curate retrieve query`: rank a dataset's episodes for a text (or demonstration episodes) under SigLIP."""

    dataset: str
    index: Path = Path("curate.duckdb")
    model: str | None = None
    query: str | None = None
    demos: tuple[int, ...] = ()  # episode indices of the same dataset showing the wanted behaviour
    camera: str | None = None
    frames: int = 8
    aggregate: str = "mean"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if (self.query is None) == (not self.demos):
            raise CurateError("give exactly one of --query TEXT or --demo EPISODE (repeatable)")
        if self.query is not None and not self.query.strip():
            raise CurateError("--query is empty; give the task in words, e.g. --query 'open the drawer'")
        if not 1 <= self.frames <= 64:
            raise CurateError(f"--frames must be between 1 and 64, got {self.frames}")
        if self.aggregate not in AGGREGATES:
            raise CurateError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")

    @property
    def query_name(self) -> str:
        """What the index stores as the query: the text, or `demo:EP,EP` for demonstration episodes."""
        return self.query if self.query is not None else "demo:" + ",".join(str(d) for d in self.demos)


def retrieve(config: RetrieveConfig, siglip: Siglip | None = None, on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Rank every episode for the query, write the ranking into the index's `retrievals` table, and return it
    (best first: dataset, episode_index, query, model, task, length, similarity)."""
    ds = lerobot_io.open_dataset(config.dataset)
    check_apart(config.index, [lerobot_io.dataset_root(ds)])  # the index and its vectors are written beside it
    camera = lerobot_io.resolve_camera(ds, config.camera)
    episodes = lerobot_io.list_episodes(ds)
    if not episodes:
        raise CurateError(f"dataset {config.dataset} has no episodes")
    by_index = {e.episode_index: e for e in episodes}
    bad = [d for d in config.demos if d not in by_index or by_index[d].length == 0]
    if bad:
        raise CurateError(f"demo episodes {bad} are not non-empty episodes of {config.dataset} (it has {len(episodes)})")
    siglip = siglip or open_siglip(config.model, config.device)
    root = lerobot_io.dataset_root(ds)
    dataset = str(root)
    fingerprint = lerobot_io.dataset_fingerprint(root)
    if Path(config.index).exists():  # a dataset changed since the index saw it is refused before minutes of embedding
        with Index(config.index, read_only=True) as index:
            index.check_unchanged(dataset, fingerprint)
    store = build_store(siglip, ds, episodes, camera, config.frames, store_path(config.index, siglip.model_id, dataset, camera, config.frames), fingerprint, on_progress=on_progress)
    if config.query is not None:
        queries = siglip.embed_texts([config.query])
    else:
        queries = store.index.reconstruct_n(0, store.index.ntotal)[np.isin(store.episodes, config.demos)]
    similarity = episode_similarity(store, queries, config.aggregate)
    registered = DatasetRecord(dataset, fingerprint, len(episodes), ds.fps, lerobot_io.camera_keys(ds))
    model = ModelRecord(siglip.model_id, "siglip", siglip.source, siglip.model_id.rsplit("@", 1)[-1], {"aggregate": config.aggregate})
    with Index(config.index) as index:
        with index.run(registered, model, camera, config.frames, [config.query_name]) as run_id:
            index.write_retrievals([RetrievalRow(dataset, int(e), config.query_name, siglip.model_id, run_id, by_index[int(e)].task, by_index[int(e)].length, float(s))
                                    for e, s in similarity.items()])
        return index.retrievals(config.query_name, [dataset], siglip.model_id)
