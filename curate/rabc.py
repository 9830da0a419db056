"""`curate weights`: the per-frame progress parquet that lerobot-train's RA-BC sample weighting reads.

The schema is lerobot's own (`lerobot.rewards.*.compute_rabc_weights`): one row per frame of the dataset with `index`
(the dataset's global frame index), `episode_index`, `frame_index` and `progress_sparse`, and the reward model in the
file's metadata (`reward_model_path`). Progress between two scored frames is interpolated linearly; before the first
scored frame it is the first's. `lerobot-train --sample_weighting.type=rabc --sample_weighting.progress_path=FILE`
then weights each sample by how much progress its action chunk makes.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import lerobot_io
from curate.errors import CurateError
from curate.index import Index
from curate.outputs import atomic_folder
from curate.ranking import ranked

FILENAME = "progress.parquet"
DATASET_KEY = b"curate_dataset_fingerprint"


@dataclass(frozen=True)
class WeightsConfig:
    dataset: str
    index: Path
    out: Path
    instruction: str | None = None  # None: each episode under its own task
    model: str | None = None
    overwrite: bool = False


def progress_table(config: WeightsConfig) -> tuple[pa.Table, str]:
    """Every frame's progress (lerobot's RA-BC schema) and the model it came from."""
    ds = lerobot_io.open_dataset(config.dataset)
    root = str(lerobot_io.dataset_root(ds))
    fingerprint = lerobot_io.dataset_fingerprint(Path(root))
    with Index(config.index, read_only=True) as index:
        index.check_unchanged(root, fingerprint)  # scores of a dataset since changed would weight the wrong frames
    rows, model, _ = ranked(config.index, config.instruction, [root], config.model)
    rows = rows.set_index("episode_index")
    episodes = lerobot_io.list_episodes(ds)
    missing = [e.episode_index for e in episodes if e.episode_index not in rows.index]
    if missing:
        under = repr(config.instruction) if config.instruction else "their own task"
        raise CurateError(f"{len(missing)} of {len(episodes)} episodes (first: {missing[0]}) have no scores under {under} from {model}; score them first with `curate score`")
    offsets = lerobot_io.episode_offsets(ds)
    index, episode_index, frame_index, progress = [], [], [], []
    for episode in episodes:
        row = rows.loc[episode.episode_index]
        frames = np.arange(episode.length)
        index.append(offsets[episode.episode_index] + frames)
        episode_index.append(np.full(episode.length, episode.episode_index))
        frame_index.append(frames)
        progress.append(np.interp(frames, np.asarray(row["frame_index"], dtype=float), np.asarray(row["frame_progress"], dtype=float)))
    table = pa.table({
        "index": np.concatenate(index).astype(np.int64),
        "episode_index": np.concatenate(episode_index).astype(np.int64),
        "frame_index": np.concatenate(frame_index).astype(np.int64),
        "progress_sparse": np.concatenate(progress).astype(np.float32),
    }).replace_schema_metadata({
        b"reward_model_path": model.encode(),
        b"curate_instruction": (config.instruction or "").encode(),
        DATASET_KEY: fingerprint.encode(),  # which dataset the frame indices belong to
    })
    return table, model


def write_weights(config: WeightsConfig) -> Path:
    """Write `FILENAME` into the new folder `out`, atomically; returns the parquet's path."""
    table, _ = progress_table(config)
    with atomic_folder(config.out, config.overwrite, inputs=[config.dataset, config.index]) as partial:
        partial.mkdir(parents=True)
        pq.write_table(table, partial / FILENAME)
    return Path(config.out).expanduser().resolve() / FILENAME
