"""One batch of episodes from decoded frames to index rows: shared by the local engine and the Ray actors."""

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from curate import lerobot_io
from curate.errors import CurateError
from curate.index import FailureRow, ScoreRow
from curate.records import EpisodeInfo
from curate.sampling import Sampling, dense_plan
from curate.scorers import Scorer


# Per episode index: (frame indices, frames (K, H, W, 3) uint8); and per failed episode index, the reason.
Decoded = tuple[dict[int, tuple[np.ndarray, np.ndarray]], dict[int, str]]


def decode_batch(ds, episodes: list[EpisodeInfo], camera: str, sampling: Sampling) -> Decoded:
    """Decode a batch with one call per video file; if that fails, retry episode by episode to isolate the bad ones."""
    requests = [(e.episode_index, sampling.decoded(e.length)) for e in episodes if e.length > 0]
    try:
        decoded = lerobot_io.decode_frames(ds, requests, [camera])
        return {e: (i, d[camera]) for (e, i), d in zip(requests, decoded, strict=True)}, {}
    except CurateError:
        pass
    ok, failed = {}, {}
    for episode, indices in requests:
        try:
            ok[episode] = (indices, lerobot_io.decode_frames(ds, [(episode, indices)], [camera])[0][camera])
        except CurateError as err:
            failed[episode] = str(err)
    return ok, failed


def batch_results(scorer: Scorer, batch: Sequence[EpisodeInfo], decoded: Decoded, todo: dict[int, list[str]], dataset: str, run_id: str, sampling: Sampling) -> tuple[list[ScoreRow], list[FailureRow]]:
    """Index rows for one decoded batch: scores, and failures for episodes that could not be decoded or are empty."""
    frames, failed = decoded
    failures = []
    for episode in batch:
        reason = failed.get(episode.episode_index) or ("empty episode (0 frames)" if episode.length == 0 else None)
        if reason:
            failures += [FailureRow(dataset, episode.episode_index, i, scorer.model_id, run_id, reason) for i in todo[episode.episode_index]]
    episodes = [e for e in batch if e.episode_index in frames]
    if sampling.stride is None:
        return _score_rows(scorer, episodes, frames, todo, dataset, run_id), failures
    return [row for e in episodes for row in _dense_rows(scorer, e, frames[e.episode_index][1], todo[e.episode_index], dataset, run_id, sampling)], failures


def _row(scorer: Scorer, episode: EpisodeInfo, instruction: str, dataset: str, run_id: str, index: np.ndarray, progress: torch.Tensor, success: torch.Tensor, match: torch.Tensor | None) -> ScoreRow:
    p = progress.double().clamp(0, 1).tolist()
    s = success.double().clamp(0, 1).tolist()
    return ScoreRow(
        dataset=dataset, episode_index=episode.episode_index, instruction=instruction, model=scorer.model_id,
        run_id=run_id, task=episode.task, length=episode.length, final_progress=p[-1],
        mean_progress=float(np.mean(p)), success_prob=max(s), frame_index=tuple(int(i) for i in index),
        frame_progress=tuple(p), frame_success=tuple(s), match_prob=None if match is None else float(match.clamp(0, 1)),
    )


def _score_rows(scorer: Scorer, episodes: Sequence[EpisodeInfo], frames: dict[int, tuple[np.ndarray, np.ndarray]], todo: dict[int, list[str]], dataset: str, run_id: str) -> list[ScoreRow]:
    """Run the model on every (episode, instruction) of the batch, grouped only by frame count so that each group is
    one tensor batch (instructions differ per row)."""
    groups: dict[int, list[tuple[EpisodeInfo, str]]] = defaultdict(list)
    for episode in episodes:
        for instruction in todo[episode.episode_index]:
            groups[len(frames[episode.episode_index][0])].append((episode, instruction))
    rows = []
    for members in groups.values():
        video = torch.from_numpy(np.stack([frames[e.episode_index][1] for e, _ in members]))
        progress, success, match = scorer.score(video, [instruction for _, instruction in members])
        assert progress.shape == video.shape[:2] and success.shape == video.shape[:2], (progress.shape, video.shape)
        assert match is None or match.shape == video.shape[:1], (match.shape, video.shape)
        for row, (episode, instruction) in enumerate(members):
            rows.append(_row(scorer, episode, instruction, dataset, run_id, frames[episode.episode_index][0], progress[row], success[row], None if match is None else match[row]))
    return rows


def _dense_rows(scorer: Scorer, episode: EpisodeInfo, frames: np.ndarray, instructions: list[str], dataset: str, run_id: str, sampling: Sampling) -> list[ScoreRow]:
    """One episode scored at every stride-th frame under each of its instructions, its frames encoded once."""
    assert scorer.dense is not None and sampling.stride is not None
    plan = dense_plan(episode.length, sampling.frames, sampling.stride)
    progress, success, match = scorer.dense(torch.from_numpy(frames), plan.grids, instructions)
    assert progress.shape == success.shape == (len(instructions), len(plan.targets)), (progress.shape, len(plan.targets))
    return [_row(scorer, episode, instruction, dataset, run_id, plan.targets, progress[i], success[i], None if match is None else match[i]) for i, instruction in enumerate(instructions)]
