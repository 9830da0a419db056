"""MetaWorld scenes for the CPU: task names and instructions, seeded environments, scripted experts, fast rendering."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display; must precede importing mujoco

import functools
from dataclasses import dataclass

import numpy as np

# The benchmark split of DESIGN.md: train on these...
TRAIN_TASKS = (
    "button-press-topdown", "button-press", "coffee-button", "coffee-push", "dial-turn", "door-open", "door-close",
    "drawer-open", "drawer-close", "faucet-open", "faucet-close", "handle-press", "lever-pull", "pick-place",
    "plate-slide", "push", "reach", "sweep-into", "window-open", "window-close",
)
# ...and never train on these (the other 20 MT50 tasks are kept for outside checks).
HELDOUT_TASKS = (
    "button-press-wall", "coffee-pull", "door-lock", "handle-pull", "plate-slide-side", "push-back", "reach-wall",
    "sweep", "basketball", "hammer",
)
TASK_SETS = {"train": TRAIN_TASKS, "heldout": HELDOUT_TASKS}

# The table centre, where free cameras look (MetaWorld world coordinates, metres).
TABLE_CENTRE = (0.0, 0.6, 0.0)
# Where lerobot's MetaWorld env puts `corner2` so the workspace fills the frame (MuJoCo's default is far away).
CORNER2_POSITION = (0.75, 0.075, 0.7)


@functools.cache
def task_descriptions() -> dict[str, str]:
    """MT50 task name (without the -v3 suffix) -> LeRobot's one-line instruction."""
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    return {name.removesuffix("-v3"): text for name, text in TASK_DESCRIPTIONS.items()}


def check_task(task: str) -> str:
    """Return `task` without a -v3 suffix, or raise ValueError naming the valid MT50 tasks."""
    name = task.removesuffix("-v3")
    if name not in task_descriptions():
        raise ValueError(f"unknown MetaWorld task {task!r}; valid MT50 tasks: {', '.join(sorted(task_descriptions()))}")
    return name


@dataclass(frozen=True)
class CameraSpec:
    """A fixed MuJoCo camera (`fixed` set) or a free camera looking at the table centre."""

    name: str
    fixed: str | None = None
    azimuth: float = 135.0
    elevation: float = -30.0
    distance: float = 1.4


FIXED_CAMERAS = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")


def parse_camera(spec: str) -> CameraSpec:
    """`corner2` (a MuJoCo camera) or `NAME:AZIMUTH:ELEVATION:DISTANCE` (a free camera), e.g. `unseen:135:-30:1.4`."""
    parts = spec.split(":")
    if len(parts) == 1:
        if spec not in FIXED_CAMERAS:
            raise ValueError(f"unknown camera {spec!r}; use one of {', '.join(FIXED_CAMERAS)} or NAME:AZIMUTH:ELEVATION:DISTANCE")
        return CameraSpec(name=spec, fixed=spec)
    try:
        name, azimuth, elevation, distance = parts[0], *map(float, parts[1:])
    except ValueError:
        raise ValueError(f"bad free camera {spec!r}; write NAME:AZIMUTH:ELEVATION:DISTANCE, e.g. unseen:135:-30:1.4") from None
    if not name.isidentifier() or name in FIXED_CAMERAS or distance <= 0:
        raise ValueError(f"bad free camera {spec!r}; the name must be a new identifier and the distance positive")
    return CameraSpec(name=name, azimuth=azimuth, elevation=elevation, distance=distance)


def make_env(task: str):
    """A MetaWorld v3 env for `task`; after `env.seed(s)`, `reset()` places objects and goals from seed s."""
    import metaworld

    env_name = f"{check_task(task)}-v3"
    benchmark = metaworld.MT1(env_name, seed=0)
    env = benchmark.train_classes[env_name]()
    env.set_task(benchmark.train_tasks[0])
    env._freeze_rand_vec = False  # randomise object and goal positions at every reset...
    env.seeded_rand_vec = True  # ...from the env's seeded generator, so episodes are reproducible
    return env


def expert_policy(task: str):
    """MetaWorld's scripted expert for `task`, with `get_action(obs) -> action`."""
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[f"{check_task(task)}-v3"]()


class FastRenderer:
    """Renders an env's cameras at a fixed square size with the cheap settings (no multisampling, shadows, reflections)."""

    def __init__(self, env, cameras: list[CameraSpec], size: int):
        import mujoco

        self._mujoco = mujoco
        model = env.model
        model.vis.quality.offsamples = 0  # must be set before the renderer allocates its buffers
        corner2 = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
        model.cam_pos[corner2] = CORNER2_POSITION
        mujoco.mj_forward(model, env.data)  # camera poses in `data` follow the model only after a forward pass
        self._env = env
        self._renderer = mujoco.Renderer(model, size, size)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self._renderer.scene.flags[flag] = 0
        self._cameras = [(spec, self._camera(spec)) for spec in cameras]

    def _camera(self, spec: CameraSpec):
        if spec.fixed is not None:
            return spec.fixed
        camera = self._mujoco.MjvCamera()
        camera.type = self._mujoco.mjtCamera.mjCAMERA_FREE
        camera.azimuth, camera.elevation, camera.distance = spec.azimuth, spec.elevation, spec.distance
        camera.lookat[:] = TABLE_CENTRE
        return camera

    def render(self) -> dict[str, np.ndarray]:
        """One upright (H, W, 3) uint8 image per camera name."""
        images = {}
        for spec, camera in self._cameras:
            self._renderer.update_scene(self._env.data, camera=camera)
            image = self._renderer.render()
            if spec.fixed is not None and spec.fixed.startswith("corner"):
                image = image[::-1, ::-1]  # these cameras render upside down; a flip alone would mirror the scene
            images[spec.name] = np.ascontiguousarray(image)
        return images

    def close(self) -> None:
        self._renderer.close()
