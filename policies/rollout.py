"""Runs one seeded MetaWorld episode under a recipe and records the stored frames as a Rollout."""

import warnings
from dataclasses import dataclass

import numpy as np

from policies.metaworld_sim import CameraSpec, FastRenderer, check_task, make_env, task_descriptions
from policies.recipes import make_recipe
from policies.records import Rollout


@dataclass(frozen=True)
class RolloutSpec:
    """Everything that determines one episode."""

    task: str
    recipe: str
    seed: int
    cameras: tuple[CameraSpec, ...]
    size: int = 96
    steps: int = 200
    stride: int = 2  # keep (and render) every stride-th step
    scene_seed: int | None = None  # randomise lights and colours from this seed (None: MetaWorld's own scene)


def run_rollout(spec: RolloutSpec) -> Rollout:
    """Roll out `spec` from a fresh seeded env; deterministic for a given spec."""
    task = check_task(spec.task)
    env = make_env(task)
    renderer = FastRenderer(env, list(spec.cameras), spec.size, spec.scene_seed)
    rng = np.random.default_rng(spec.seed)
    recipe = make_recipe(spec.recipe, task, rng)
    images: dict[str, list[np.ndarray]] = {camera.name: [] for camera in spec.cameras}
    states, actions, rewards, successes = [], [], [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's passive checker and the experts' "constants too high"
            env.seed(spec.seed)  # MetaWorld's reset ignores its seed argument; object and goal positions follow this
            obs, _ = env.reset()
            window_success = False
            for step in range(spec.steps):
                action = recipe.act(obs, step)
                keep = step % spec.stride == 0
                if keep:
                    for name, image in renderer.render().items():
                        images[name].append(image)
                    states.append(obs.astype(np.float32))
                    actions.append(action)
                obs, reward, _, truncated, info = env.step(action)
                window_success |= bool(info["success"])
                if keep:
                    rewards.append(float(reward))
                    successes.append(False)
                # A frame's success covers every step until the next stored frame, so no success is missed.
                successes[-1] = successes[-1] or window_success
                if (step + 1) % spec.stride == 0 or step == spec.steps - 1:
                    window_success = False
                if truncated:
                    break
    finally:
        renderer.close()
        env.close()
    return Rollout(
        task=task,
        instruction=task_descriptions()[task],
        recipe=recipe.spec(),
        seed=spec.seed,
        images={name: np.stack(frames) for name, frames in images.items()},
        states=np.stack(states),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, np.float32),
        successes=np.asarray(successes, bool),
    )
