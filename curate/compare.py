"""`curate compare`: per target task, select K pool episodes by each method, train BC on each selection over several
seeds, roll the policies out, and report success rates and selection precision side by side."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from curate import lerobot_io, provenance
from curate.datagen import DatagenConfig, generate
from curate.errors import CurateError
from curate.index import Index
from curate.outputs import workspace
from curate.retrieval import RetrieveConfig, RetrieveTrainConfig, open_siglip, retrieve, train_siglip
from curate.scoring import ScoreConfig, prepare, score_dataset
from policies.bc import BCConfig, train_bc
from policies.evaluation import evaluate_policy
from policies.metaworld_sim import check_task, task_descriptions

# A pool per target task: experts, noisy and stalled runs (suboptimal and failed), and the other targets' episodes.
POOL_RECIPES = ("expert", "gaussian:0.5", "gaussian:1.0", "stall:40", "random-actions:0.5", "uniform")
METHODS = ("reward_model", "siglip", "random", "all", "oracle")


@dataclass(frozen=True)
class CompareConfig:
    """`curate compare`: targets, K, seeds and the sizes of pool, training and evaluation."""

    tasks: tuple[str, ...]
    out: Path
    k: int = 10
    seeds: int = 3
    pool_episodes: int = 24  # per task, cycled over POOL_RECIPES
    model: str | None = None
    siglip: str | None = None  # a SigLIP folder or hub id; None: train a small one on the pool (frames + task strings)
    siglip_steps: int = 1000
    bc_steps: int = 3000
    eval_episodes: int = 20
    steps: int = 200  # simulation steps per pool and evaluation episode
    pool_size: int = 64  # camera resolution of the pool videos (the reward model reads them)
    task_names: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "task_names", tuple(dict.fromkeys(check_task(t) for t in self.tasks)))
        except ValueError as err:
            raise CurateError(str(err)) from None
        if not self.task_names:
            raise CurateError("no target tasks; pass --tasks, e.g. drawer-open,button-press")
        if self.k < 1 or self.seeds < 1 or self.eval_episodes < 1 or self.pool_episodes < 1:
            raise CurateError(f"--k, --seeds, --eval-episodes and --pool-episodes must be at least 1, got k={self.k} seeds={self.seeds} eval_episodes={self.eval_episodes} pool_episodes={self.pool_episodes}")
        pool = self.pool_episodes * len(self.task_names)
        if self.k > pool:
            raise CurateError(f"--k {self.k} is larger than the pool ({pool} episodes); lower --k or raise --pool-episodes")


def build_pool(config: CompareConfig) -> Path:
    """The play pool, generated once and reused (cached under OUT/pool for the same tasks and sizes)."""
    pool = config.out / "pool"
    spec = {"tasks": config.task_names, "episodes": config.pool_episodes, "recipes": POOL_RECIPES, "steps": config.steps, "size": config.pool_size}
    stamp = config.out / "pool.json"
    if pool.exists() and stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(spec)):
        return pool
    generate(DatagenConfig(out=pool, tasks=config.task_names, episodes_per_task=config.pool_episodes, recipes=POOL_RECIPES, cameras=("corner2",), size=config.pool_size, steps=config.steps, stride=2, overwrite=True))
    stamp.write_text(json.dumps(spec))
    return pool


def siglip_model(config: CompareConfig, pool: Path) -> str:
    """The SigLIP to retrieve with: the one given, or one trained on the pool's frames and tasks (cached)."""
    if config.siglip is not None:
        return config.siglip
    out = config.out / "siglip"
    spec = {"pool": json.loads((config.out / "pool.json").read_text()), "steps": config.siglip_steps}
    stamp = config.out / "siglip.json"
    if not (out.exists() and stamp.exists() and json.loads(stamp.read_text()) == spec):
        train_siglip(RetrieveTrainConfig(datasets=(str(pool),), out=out, steps=config.siglip_steps, overwrite=True))
        stamp.write_text(json.dumps(spec))
    return str(out)


def true_successes(episodes: list, target: str) -> list[int]:
    """Episodes of the target task that succeeded (from next.success), in dataset order."""
    instruction = task_descriptions()[target]
    return [e.episode_index for e in episodes if e.task == instruction and e.quality != "failure"]


def selections(target: str, episodes: list, scores: dict[int, float], similarity: dict[int, float], k: int, seed: int) -> dict[str, list[int]]:
    """Episode indices each method picks for `target` (an MT50 task name): by reward-model final progress and by
    SigLIP similarity under the target's instruction, at random, all of the target's episodes, or its true successes."""
    instruction = task_descriptions()[target]
    mine = [e.episode_index for e in episodes if e.task == instruction]
    successes = true_successes(episodes, target)
    rng = np.random.default_rng(seed)
    by_score = sorted(scores, key=lambda i: -scores[i])
    by_similarity = sorted(similarity, key=lambda i: -similarity[i])
    return {
        "reward_model": by_score[:k],
        "siglip": by_similarity[:k],
        "random": sorted(rng.choice([e.episode_index for e in episodes], size=k, replace=False).tolist()),
        "all": mine,
        "oracle": successes[:k],
    }


def precision(selected: list[int], episodes: list, target: str) -> float:
    """Share of the selection that are true successes of the target task."""
    good = set(true_successes(episodes, target))
    return float(np.mean([i in good for i in selected])) if selected else 0.0


def run_compare(config: CompareConfig, on_step: Callable[[str], None] | None = None) -> dict:
    """Everything end to end; returns {"tasks": {TASK: {METHOD: {success_mean, success_std, precision, ...}}}}."""
    say = on_step or (lambda message: None)
    workspace(config.out, inputs=[config.model] if config.model and Path(config.model).exists() else [])
    say("generating the pool")
    pool = build_pool(config)
    index_path = config.out / "compare.duckdb"
    instructions = tuple(task_descriptions()[t] for t in config.task_names)
    say("scoring the pool")
    summary = score_dataset(prepare(ScoreConfig(dataset=str(pool), index=index_path, model=config.model, instructions=instructions)))
    ds = lerobot_io.open_dataset(pool)
    episodes = lerobot_io.list_episodes(ds)
    columns = lerobot_io.read_columns(ds, ["observation.state", "action"])
    mean, std = lerobot_io.feature_stats(ds, "observation.state")
    say("SigLIP retrieval")
    siglip = open_siglip(siglip_model(config, pool))
    similarity = {i: retrieve(RetrieveConfig(dataset=str(pool), index=index_path, query=i), siglip=siglip) for i in instructions}
    with Index(index_path, read_only=True) as index:
        rows = index.scores(model=summary.model)
    results: dict = {"tasks": {}, "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}, "model": summary.model, "siglip": siglip.model_id, "code_version": provenance.code_version(), "created": provenance.now()}
    for target in config.task_names:
        instruction = task_descriptions()[target]
        scores = dict(zip(rows.loc[rows["instruction"] == instruction, "episode_index"], rows.loc[rows["instruction"] == instruction, "final_progress"], strict=True))
        retrieved = dict(zip(similarity[instruction]["episode_index"], similarity[instruction]["similarity"], strict=True))
        results["tasks"][target] = {}
        for method in METHODS:
            rates, errors, precisions = [], [], []
            for seed in range(config.seeds):
                chosen = selections(target, episodes, scores, retrieved, config.k, seed)[method]
                if not chosen:
                    raise CurateError(f"the pool has no episode for {method} to select for {target}; raise --pool-episodes")
                precisions.append(precision(chosen, episodes, target))
                say(f"{target}: {method}, seed {seed}: BC on {len(chosen)} episodes")
                run = _bc_run(config, columns, mean, std, target, chosen, seed)
                rates.append(run["success_rate"])
                errors += run["errors"]
            results["tasks"][target][method] = {
                "success_mean": float(np.nanmean(rates)), "success_std": float(np.nanstd(rates)), "success_per_seed": rates,
                "precision": float(np.mean(precisions)), "selected": len(chosen), "rollout_errors": errors,
            }
    (config.out / "results.json").write_text(json.dumps(results, indent=2))
    bar_chart(results, config.out / "compare.png")
    return results


def _bc_run(config: CompareConfig, columns: dict, mean: np.ndarray, std: np.ndarray, target: str, chosen: list[int], seed: int) -> dict:
    """Train BC on the chosen episodes and roll it out; kept in OUT/runs/ keyed by what decides the result (the
    episodes, seed and settings), so an interrupted compare resumes and methods that chose alike share the run."""
    key = {"target": target, "episodes": sorted(int(e) for e in chosen), "seed": seed, "bc_steps": config.bc_steps, "eval_episodes": config.eval_episodes, "steps": config.steps}
    path = config.out / "runs" / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}.json"
    if path.exists():
        return json.loads(path.read_text())
    mask = np.isin(columns["episode_index"], chosen)
    policy, _ = train_bc(columns["observation.state"][mask], columns["action"][mask], mean, std, BCConfig(steps=config.bc_steps, seed=seed))
    result = evaluate_policy(policy.act, target, config.eval_episodes, seed=100_000 + 1000 * seed, steps=config.steps)
    run = {"key": key, "success_rate": result.success_rate, "errors": [f"seed {s}: {e}" for s, e in zip(result.seeds, result.errors, strict=True) if e]}
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(run))
    partial.replace(path)  # whole or absent
    return run


def bar_chart(results: dict, path: Path) -> Path:
    tasks = list(results["tasks"])
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(tasks), 3.4))
    width = 0.8 / len(METHODS)
    for m, method in enumerate(METHODS):
        means = [results["tasks"][t][method]["success_mean"] for t in tasks]
        stds = [results["tasks"][t][method]["success_std"] for t in tasks]
        ax.bar(np.arange(len(tasks)) + m * width, means, width, yerr=stds, label=method, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set(ylabel="BC success rate", ylim=(0, 1.05), title="behaviour cloning on each selection")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
