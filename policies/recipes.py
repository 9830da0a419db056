"""Play-data recipes: how an episode's actions are chosen (scripted expert, degraded in registered ways)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from policies.metaworld_sim import expert_policy, task_descriptions

RECIPES: dict[str, type["Recipe"]] = {}
# A mix that gives every task successes, late successes and failures (cycled over a task's episodes).
DEFAULT_RECIPES = ("expert", "gaussian:0.5", "stall:40", "gaussian:1.0", "other-task", "random-actions:0.6")


def register_recipe(name: str):
    """Class decorator: make a recipe available by name in specs like `gaussian:0.5`."""

    def wrap(cls: type["Recipe"]) -> type["Recipe"]:
        cls.name = name
        RECIPES[name] = cls
        return cls

    return wrap


@dataclass
class Recipe:
    """Chooses actions for one episode; `param` is the number after the colon in the spec."""

    task: str
    rng: np.random.Generator
    param: float | None = None
    name: ClassVar[str] = ""
    default_param: ClassVar[float | None] = None

    def __post_init__(self) -> None:
        if self.param is None:
            self.param = self.default_param
        self.expert = expert_policy(self.task)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        raise NotImplementedError

    def spec(self) -> str:
        return self.name if self.param is None else f"{self.name}:{self.param:g}"


def parse_recipe(spec: str) -> tuple[str, float | None]:
    """`gaussian:0.5` -> ("gaussian", 0.5); raises ValueError listing the recipes for an unknown name."""
    name, _, value = spec.partition(":")
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    if not value:
        return name, None
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"bad recipe parameter in {spec!r}; write NAME:NUMBER, e.g. gaussian:0.5") from None


def make_recipe(spec: str, task: str, rng: np.random.Generator) -> Recipe:
    name, param = parse_recipe(spec)
    return RECIPES[name](task=task, rng=rng, param=param)


def _clip(action: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


@register_recipe("expert")
class Expert(Recipe):
    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return _clip(self.expert.get_action(obs))


@register_recipe("gaussian")
class GaussianNoise(Recipe):
    """Expert plus Gaussian action noise of standard deviation `param`."""

    default_param = 0.5

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return _clip(self.expert.get_action(obs) + self.rng.normal(0.0, self.param, 4))


@register_recipe("random-actions")
class RandomActions(Recipe):
    """At each step, with probability `param`, a uniform random action instead of the expert's."""

    default_param = 0.6

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        if self.rng.random() < self.param:
            return self.rng.uniform(-1, 1, 4).astype(np.float32)
        return _clip(self.expert.get_action(obs))


@register_recipe("stall")
class ExpertThenStall(Recipe):
    """The expert for the first `param` steps, then zero actions: graded partial progress."""

    default_param = 40

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return _clip(self.expert.get_action(obs)) if step < self.param else np.zeros(4, np.float32)


@register_recipe("other-task")
class OtherTask(Recipe):
    """Another MT50 task's expert acting in this scene (it sometimes solves this task anyway)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        others = sorted(name for name in task_descriptions() if name != self.task)
        self.other = others[int(self.rng.integers(len(others)))]
        self.policy = expert_policy(self.other)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return _clip(self.policy.get_action(obs))

    def spec(self) -> str:
        return f"{self.name}({self.other})"


@register_recipe("uniform")
class UniformRandom(Recipe):
    """Uniform random actions."""

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return self.rng.uniform(-1, 1, 4).astype(np.float32)
