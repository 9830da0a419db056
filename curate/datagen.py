"""Generates a MetaWorld play dataset (experts and degraded recipes) and writes it as a LeRobot v3 dataset."""

import contextlib
import itertools
import json
import multiprocessing
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.outputs import WORKSPACE, check_target, os_errors, workspace
from curate.records import EpisodeData, quality_label
from policies.metaworld_sim import TASK_SETS, check_task, parse_camera
from policies.recipes import DEFAULT_RECIPES, parse_recipe
from policies.records import Rollout
from policies.rollout import RolloutSpec, run_rollout

MANIFEST = "curate_datagen.json"
PART = 50  # episodes per part: what a killed generation can lose
PART_RECORDS = "curate_datagen_part.json"


@dataclass(frozen=True)
class DatagenConfig:
    """`curate datagen metaworld`: which tasks, how many episodes, which recipes, cameras and rendering settings."""

    out: Path
    tasks: tuple[str, ...] = ("drawer-open", "pick-place")
    episodes_per_task: int = 6
    recipes: tuple[str, ...] = DEFAULT_RECIPES  # episode i of a task uses recipes[i % len(recipes)]
    cameras: tuple[str, ...] = ("corner2", "topview")
    size: int = 96
    steps: int = 200
    stride: int = 2
    seed: int = 0
    workers: int = 1
    view_seed: int = 0  # draws the poses of NAME:random cameras (training uses 0; evaluation views another seed)
    randomise_scene: bool = False  # per-episode lights and colours
    overwrite: bool = False

    @property
    def task_list(self) -> tuple[str, ...]:
        """The MT50 tasks, task sets ('train', 'heldout') expanded, each once, in order."""
        names = [name for entry in self.tasks for name in TASK_SETS.get(entry, (entry,))]
        return tuple(dict.fromkeys(check_task(name) for name in names))

    def __post_init__(self) -> None:
        try:
            self.task_list  # noqa: B018 (validates the names)
            for spec in self.recipes:
                parse_recipe(spec)
            for spec in self.cameras:
                parse_camera(spec)
        except ValueError as err:
            raise CurateError(str(err)) from None
        if not self.task_list:
            raise CurateError("no tasks given; pass --tasks with MT50 task names (or 'train' / 'heldout')")
        if self.episodes_per_task < 1:
            raise CurateError(f"--episodes-per-task must be at least 1, got {self.episodes_per_task}")
        if not self.recipes:
            raise CurateError("no recipes given; pass --recipes, e.g. expert,gaussian:0.5")
        if len({parse_camera(spec).name for spec in self.cameras}) != len(self.cameras) or not self.cameras:
            raise CurateError(f"--cameras needs one or more distinct camera names, got {','.join(self.cameras)!r}")
        if not 32 <= self.size <= 512:  # the AV1 encoder crashes (SIGFPE) on 16-pixel frames
            raise CurateError(f"--size must be between 32 and 512 pixels, got {self.size}")
        if self.steps < 2 or self.stride < 1 or self.stride >= self.steps:
            raise CurateError(f"need --steps >= 2 and 1 <= --stride < --steps, got steps={self.steps} stride={self.stride}")
        check_target(self.out, self.overwrite)
        if self.workers < 1:
            raise CurateError(f"--workers must be at least 1, got {self.workers}")

    @property
    def fps(self) -> int:
        """MetaWorld steps at 80 Hz; keeping every stride-th step gives this frame rate."""
        return max(1, round(80 / self.stride))


def plan(config: DatagenConfig) -> list[RolloutSpec]:
    """Every episode to roll out, in dataset order; each gets its own seed derived from (seed, task, episode), and
    its random camera poses and scene from (view seed, seed, task, episode), so views never depend on the actions."""
    cameras = tuple(parse_camera(spec) for spec in config.cameras)
    specs = []
    for task_number, task in enumerate(config.task_list):
        for episode in range(config.episodes_per_task):
            seed = int(np.random.SeedSequence([config.seed, task_number, episode]).generate_state(1)[0])
            views = np.random.default_rng([config.view_seed, config.seed, task_number, episode, 7])
            posed = tuple(camera.draw(views) for camera in cameras)
            scene = np.random.default_rng([config.view_seed, config.seed, task_number, episode, 8])
            scene_seed = int(scene.integers(2**31)) if config.randomise_scene else None
            recipe = config.recipes[episode % len(config.recipes)]
            specs.append(RolloutSpec(task, recipe, seed, posed, config.size, config.steps, config.stride, scene_seed))
    return specs


def camera_key(name: str) -> str:
    return f"observation.images.{name}"


def to_episode(rollout: Rollout) -> EpisodeData:
    """A rollout in LeRobot's conventions: the instruction as task, next.reward / next.success per frame."""
    arrays = {camera_key(name): frames for name, frames in rollout.images.items()}
    arrays |= {
        "observation.state": rollout.states,
        "action": rollout.actions,
        "next.reward": rollout.rewards.reshape(-1, 1),
        "next.success": rollout.successes.reshape(-1, 1),
    }
    return EpisodeData(task=rollout.instruction, arrays=arrays)


def generate(config: DatagenConfig, on_episode: Callable[[Rollout], None] | None = None, on_resume: Callable[[int, Path], None] | None = None) -> dict:
    """Roll out and write the dataset at `config.out` atomically; returns the manifest (also saved in the dataset).

    The episodes are written in parts of `PART` (each a finished LeRobot dataset in `work_folder(out)`), joined into
    `out` at the end without re-encoding, and the work folder is removed. A killed run, run again with the same
    settings, keeps the parts it finished (`on_resume(episodes, folder)` says how many) and rolls out the rest;
    other settings start over."""
    specs = plan(config)
    work = work_folder(config.out)
    chunks = [specs[first : first + PART] for first in range(0, len(specs), PART)]
    parts = [work / f"part-{n:05d}" for n in range(len(chunks))]
    with os_errors(work):
        done = _open_work(work, {"specs": [asdict(spec) for spec in specs], "cameras": list(config.cameras)}, parts)
    if done and on_resume is not None:
        on_resume(sum(len(chunks[n]) for n in done), work)
    camera_keys = [camera_key(parse_camera(spec).name) for spec in config.cameras]
    todo = [n for n in range(len(chunks)) if n not in done]
    rollouts = _rollouts([spec for n in todo for spec in chunks[n]], config.workers)
    for n in todo:
        _write_part(parts[n], chunks[n], PART * n, itertools.islice(rollouts, len(chunks[n])), config.fps, camera_keys, on_episode)
    manifest = {
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()},
        "code_version": provenance.code_version(),
        "created": provenance.now(),
        "episodes": [record for part in parts for record in json.loads((part / PART_RECORDS).read_text())],
    }
    lerobot_io.merge_datasets(config.out, parts, overwrite=config.overwrite, extra_files={MANIFEST: lambda: manifest})
    for part in parts:  # only what this generation put there: a file someone else added stays, with the folder
        shutil.rmtree(part, ignore_errors=True)
    for name in ("settings.json", WORKSPACE):
        (work / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        work.rmdir()
    return manifest


def _write_part(out: Path, specs: list[RolloutSpec], first: int, rollouts: Iterator[Rollout], fps: int, camera_keys: list[str], on_episode: Callable[[Rollout], None] | None) -> None:
    """One part as a finished dataset, with its episodes' manifest records (numbered from `first`) beside it."""
    records: list[dict] = []

    def episodes() -> Iterator[EpisodeData]:
        for i, (spec, rollout) in enumerate(zip(specs, rollouts, strict=True)):
            records.append(_record(first + i, spec, rollout))
            if on_episode is not None:
                on_episode(rollout)
            yield to_episode(rollout)

    lerobot_io.write_dataset(out, episodes(), fps=fps, camera_keys=camera_keys, robot_type="sawyer", extra_files={PART_RECORDS: lambda: records})


def _record(index: int, spec: RolloutSpec, rollout: Rollout) -> dict:
    return {
        "episode_index": index,
        "task": rollout.task,
        "instruction": rollout.instruction,
        "recipe": rollout.recipe,
        "seed": rollout.seed,
        "quality": quality_label(rollout.successes),
        "cameras": {c.name: asdict(c) | {"lookat": list(c.lookat)} for c in spec.cameras if not c.fixed},  # poses as drawn
        "scene_seed": spec.scene_seed,
    }


def work_folder(out: Path) -> Path:
    """Where a generation keeps its finished parts until it joins them: hidden, beside `out`."""
    out = Path(out).expanduser().resolve()
    return out.parent / f".{out.name}.datagen"


def _open_work(work: Path, settings: dict, parts: list[Path]) -> set[int]:
    """The numbers of the parts a killed run with these settings finished. The folder is a curate workspace (a user's
    folder in its place is refused); the parts of other settings are cleared first."""
    workspace(work)
    file = work / "settings.json"
    try:
        if json.loads(file.read_text()) == json.loads(json.dumps(settings)):
            return {n for n, part in enumerate(parts) if (part / PART_RECORDS).is_file()}
    except (OSError, ValueError):  # none yet
        pass
    for part in work.glob("part-*"):
        shutil.rmtree(part)
    partial = work / ".settings.json.partial"
    partial.write_text(json.dumps(settings))
    partial.replace(file)
    return set()


def _rollouts(specs: list[RolloutSpec], workers: int) -> Iterator[Rollout]:
    """Rollouts in plan order (so the dataset is the same for any number of workers)."""
    if workers == 1:
        yield from map(run_rollout, specs)
        return
    # spawn: each worker makes its own rendering context instead of inheriting the parent's state.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(run_rollout, specs)


def quality_counts(manifest: dict) -> dict[str, Counter]:
    """Per task, how many episodes of each quality."""
    counts: dict[str, Counter] = {}
    for record in manifest["episodes"]:
        counts.setdefault(record["task"], Counter())[record["quality"]] += 1
    return counts
