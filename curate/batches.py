"""One batch of episodes from decoded frames to index rows: shared by the local engine and the Ray actors."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from curate import lerobot_io
from curate.errors import CurateError
from curate.index import CameraScore, FailureRow, ScoreRow
from curate.records import EpisodeInfo
from curate.sampling import Sampling, dense_plan
from curate.scorers import Scorer


# Per episode index: (frame indices, per camera key its frames (K, H, W, 3) uint8); per failed episode, the reason.
Decoded = tuple[dict[int, tuple[np.ndarray, dict[str, np.ndarray]]], dict[int, str]]


def decode_batch(ds, episodes: list[EpisodeInfo], cameras: Sequence[str], sampling: Sampling) -> Decoded:
    """Decode a batch with one call per video file; if that fails, retry episode by episode to isolate the bad ones."""
    requests = [(e.episode_index, sampling.decoded(e.length)) for e in episodes if e.length > 0]
    try:
        decoded = lerobot_io.decode_frames(ds, requests, cameras)
        return {e: (i, d) for (e, i), d in zip(requests, decoded, strict=True)}, {}
    except CurateError:
        pass
    ok, failed = {}, {}
    for episode, indices in requests:
        try:
            ok[episode] = (indices, lerobot_io.decode_frames(ds, [(episode, indices)], cameras)[0])
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
    cameras = list(next(iter(frames.values()))[1]) if frames else []
    by_camera = {}
    for camera in cameras:
        seen = {e: (indices, per_camera[camera]) for e, (indices, per_camera) in frames.items()}
        if sampling.stride is None:
            by_camera[camera] = _score_rows(scorer, episodes, seen, todo, dataset, run_id)
        else:
            by_camera[camera] = [row for e in episodes for row in _dense_rows(scorer, e, seen[e.episode_index][1], todo[e.episode_index], dataset, run_id, sampling)]
    if len(by_camera) == 1:
        return next(iter(by_camera.values())), failures
    return [combine(dict(zip(by_camera, rows, strict=True))) for rows in zip(*by_camera.values(), strict=True)], failures


def combine(by_camera: dict[str, ScoreRow]) -> ScoreRow:
    """One row from several cameras' rows of the same (episode, instruction): at each scored frame the highest
    progress and success any camera saw, the highest match, each camera's own numbers kept beside (a wrist camera that
    cannot see the goal must not hide what the front camera saw)."""
    rows = list(by_camera.values())
    first = rows[0]
    assert all((r.episode_index, r.instruction, r.frame_index) == (first.episode_index, first.instruction, first.frame_index) for r in rows)
    progress = np.max([r.frame_progress for r in rows], axis=0)
    success = np.max([r.frame_success for r in rows], axis=0)
    matches = [r.match_prob for r in rows if r.match_prob is not None]
    cameras = tuple(CameraScore(c, r.final_progress, r.success_prob, r.match_prob, r.frame_progress) for c, r in by_camera.items())
    return replace(first, final_progress=float(progress[-1]), mean_progress=float(progress.mean()), success_prob=float(success.max()),
                   frame_progress=tuple(progress.tolist()), frame_success=tuple(success.tolist()), match_prob=max(matches) if matches else None, cameras=cameras)


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
    one tensor batch, each episode's frames in it once however many instructions it is scored under."""
    groups: dict[int, list[EpisodeInfo]] = defaultdict(list)
    for episode in episodes:
        groups[len(frames[episode.episode_index][0])].append(episode)
    rows = []
    for group in groups.values():
        video = torch.from_numpy(np.stack([frames[e.episode_index][1] for e in group]))
        members = [(owner, episode, instruction) for owner, episode in enumerate(group) for instruction in todo[episode.episode_index]]
        progress, success, match = scorer.score(video, [instruction for _, _, instruction in members], torch.tensor([owner for owner, _, _ in members]))
        assert progress.shape == success.shape == (len(members), video.shape[1]), (progress.shape, video.shape)
        assert match is None or match.shape == (len(members),), (match.shape, len(members))
        for row, (_, episode, instruction) in enumerate(members):
            rows.append(_row(scorer, episode, instruction, dataset, run_id, frames[episode.episode_index][0], progress[row], success[row], None if match is None else match[row]))
    return rows


def _dense_rows(scorer: Scorer, episode: EpisodeInfo, frames: np.ndarray, instructions: list[str], dataset: str, run_id: str, sampling: Sampling) -> list[ScoreRow]:
    """One episode scored at every stride-th frame under each of its instructions, its frames encoded once."""
    assert scorer.dense is not None and sampling.stride is not None
    plan = dense_plan(episode.length, sampling.frames, sampling.stride)
    progress, success, match = scorer.dense(torch.from_numpy(frames), plan.grids, instructions)
    assert progress.shape == success.shape == (len(instructions), len(plan.targets)), (progress.shape, len(plan.targets))
    return [_row(scorer, episode, instruction, dataset, run_id, plan.targets, progress[i], success[i], None if match is None else match[i]) for i, instruction in enumerate(instructions)]
