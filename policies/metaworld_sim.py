"""MetaWorld scenes for the CPU: task names and instructions, seeded environments, scripted experts, fast rendering."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display; must precede importing mujoco

import functools
from dataclasses import dataclass

import numpy as np

# The benchmark split (docs/design.md): train on these 34...
TRAIN_TASKS = (
    "button-press-topdown", "button-press", "coffee-button", "coffee-push", "dial-turn", "door-open", "door-close",
    "drawer-open", "drawer-close", "faucet-open", "faucet-close", "handle-press", "lever-pull", "pick-place",
    "plate-slide", "push", "reach", "sweep-into", "window-open", "window-close",
    "assembly", "button-press-topdown-wall", "disassemble", "handle-press-side", "handle-pull-side", "peg-insert-side",
    "pick-place-wall", "pick-out-of-hole", "plate-slide-back", "plate-slide-back-side", "peg-unplug-side", "soccer",
    "stick-push", "stick-pull",
)
# ...never train on these 10 (the remaining 6 MT50 tasks are kept for outside checks).
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
    """A fixed MuJoCo camera (`fixed` set), a free camera looking at the table centre (plus `lookat` offset), or a
    free camera whose pose is drawn anew for every episode (`random`; `draw` turns it into a concrete one)."""

    name: str
    fixed: str | None = None
    azimuth: float = 135.0
    elevation: float = -30.0
    distance: float = 1.4
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)  # offset from the table centre, metres
    fovy: float = 45.0  # vertical field of view, degrees
    random: bool = False

    def draw(self, rng: np.random.Generator) -> "CameraSpec":
        """A concrete pose from the randomised-view distribution: any azimuth, elevations from 15 to 65 degrees
        down, 1.0-2.0 m away, a look-at point up to 15 cm off the table centre, a 35-60 degree field of view."""
        if not self.random:
            return self
        return CameraSpec(
            name=self.name, azimuth=float(rng.uniform(0, 360)), elevation=float(rng.uniform(-65, -15)),
            distance=float(rng.uniform(1.0, 2.0)), lookat=tuple(float(v) for v in rng.uniform([-0.15, -0.15, -0.05], [0.15, 0.15, 0.15])),
            fovy=float(rng.uniform(35, 60)),
        )


FIXED_CAMERAS = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")


def parse_camera(spec: str) -> CameraSpec:
    """`corner2` (a MuJoCo camera), `NAME:AZIMUTH:ELEVATION:DISTANCE` (a free camera, e.g. `unseen:135:-30:1.4`), or
    `NAME:random` (a free camera with a new random pose every episode)."""
    parts = spec.split(":")
    if len(parts) == 1:
        if spec not in FIXED_CAMERAS:
            raise ValueError(f"unknown camera {spec!r}; use one of {', '.join(FIXED_CAMERAS)}, NAME:AZIMUTH:ELEVATION:DISTANCE or NAME:random")
        return CameraSpec(name=spec, fixed=spec)
    name = parts[0]
    if not name.isidentifier() or name in FIXED_CAMERAS:
        raise ValueError(f"bad free camera {spec!r}; the name must be a new identifier, not a MuJoCo camera's")
    if parts[1:] == ["random"]:
        return CameraSpec(name=name, random=True)
    try:
        azimuth, elevation, distance = map(float, parts[1:])
    except ValueError:
        raise ValueError(f"bad free camera {spec!r}; write NAME:AZIMUTH:ELEVATION:DISTANCE (e.g. unseen:135:-30:1.4) or NAME:random") from None
    if distance <= 0:
        raise ValueError(f"bad free camera {spec!r}; the distance must be positive")
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


def randomise_scene(model, rng: np.random.Generator) -> None:
    """Visual-only changes a user's scene has too: light colour and strength, and every material's and surface's
    colour shifted per channel (physics is untouched: only colours and lights change)."""
    tint = rng.uniform(0.75, 1.25, 3)
    strength = rng.uniform(0.6, 1.3)
    model.light_diffuse[:] = np.clip(model.light_diffuse * strength * tint, 0, 1)
    model.light_ambient[:] = np.clip(model.light_ambient * rng.uniform(0.5, 1.5) * tint, 0, 1)
    model.vis.headlight.diffuse[:] = np.clip(np.asarray(model.vis.headlight.diffuse) * strength * tint, 0, 1)
    for table in (model.mat_rgba, model.geom_rgba):
        table[:, :3] = np.clip(table[:, :3] * rng.uniform(0.7, 1.3, (len(table), 3)), 0, 1)


class FastRenderer:
    """Renders an env's cameras at a fixed square size with the cheap settings (no multisampling, shadows, reflections)."""

    def __init__(self, env, cameras: list[CameraSpec], size: int, scene_seed: int | None = None):
        import mujoco

        self._mujoco = mujoco
        model = env.model
        model.vis.quality.offsamples = 0  # must be set before the renderer allocates its buffers
        corner2 = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
        model.cam_pos[corner2] = CORNER2_POSITION
        mujoco.mj_forward(model, env.data)  # camera poses in `data` follow the model only after a forward pass
        if scene_seed is not None:
            randomise_scene(model, np.random.default_rng(scene_seed))
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
        camera.lookat[:] = np.add(TABLE_CENTRE, spec.lookat)
        return camera

    def render(self) -> dict[str, np.ndarray]:
        """One upright (H, W, 3) uint8 image per camera name."""
        images = {}
        for spec, camera in self._cameras:
            if spec.fixed is None:
                self._env.model.vis.global_.fovy = spec.fovy  # free cameras take the model's field of view
            self._renderer.update_scene(self._env.data, camera=camera)
            image = self._renderer.render()
            if spec.fixed is not None and spec.fixed.startswith("corner"):
                image = image[::-1, ::-1]  # these cameras render upside down; a flip alone would mirror the scene
            images[spec.name] = np.ascontiguousarray(image)
        return images

    def close(self) -> None:
        self._renderer.close()
