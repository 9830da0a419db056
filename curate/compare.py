"""`curate compare`: per target task, select K pool episodes by each method, train BC on each selection over several
seeds, roll the policies out, and report success rates and selection precision side by side."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from curate import lerobot_io, provenance
from curate.datagen import DatagenConfig, generate
from curate.errors import CurateError
from curate.index import Index
from curate.bc_runs import rabc_weights
from curate.outputs import STAMP, workspace
from curate.plots import bar_chart
from curate.rabc import FILENAME, WeightsConfig, write_weights
from curate.retrieval import RetrieveConfig, RetrieveTrainConfig, open_siglip, retrieve, train_siglip
from curate.scoring import ScoreConfig, prepare, score_dataset
from curate.trimming import useful_span
from policies.bc import BCConfig, train_bc
from policies.evaluation import evaluate_policy
from policies.metaworld_sim import check_task, task_descriptions
from rewardmodel.siglip import SiglipTrainConfig

# A pool like real play data: per task experts, noisy, stalled (late) and failed runs, each episode from a random
# camera pose; besides the targets, the tasks that look like them (the reward model must tell them apart).
POOL_RECIPES = ("expert", "gaussian:0.5", "gaussian:1.0", "stall:40", "random-actions:0.5", "uniform")
LOOK_ALIKES = {
    "drawer-open": ("drawer-close",), "drawer-close": ("drawer-open",), "door-open": ("door-close",), "door-close": ("door-open",),
    "window-open": ("window-close",), "window-close": ("window-open",),
    "button-press": ("button-press-topdown", "button-press-wall"), "button-press-topdown": ("button-press", "button-press-wall"),
    "button-press-wall": ("button-press", "button-press-topdown"),
}
POOL_CAMERA = "pool:random"
METHODS = ("reward_model", "reward_model_trimmed", "reward_weighted", "pool", "siglip", "random", "all", "oracle")
WEIGHT_HORIZON = 10  # frames over which reward-weighted BC measures a frame's progress
TRIM_MARGIN = 2


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
    workers: int = 1  # BC runs trained and rolled out side by side, one process each

    @property
    def task_names(self) -> tuple[str, ...]:
        """The target tasks, checked, each once."""
        return tuple(dict.fromkeys(check_task(t) for t in self.tasks))

    def __post_init__(self) -> None:
        try:
            self.task_names  # noqa: B018 (validates the names)
        except ValueError as err:
            raise CurateError(str(err)) from None
        if not self.task_names:
            raise CurateError("no target tasks; pass --tasks, e.g. drawer-open,button-press")
        if min(self.k, self.seeds, self.eval_episodes, self.pool_episodes, self.workers) < 1:
            raise CurateError(f"--k, --seeds, --eval-episodes, --pool-episodes and --workers must be at least 1, got k={self.k} seeds={self.seeds} eval_episodes={self.eval_episodes} pool_episodes={self.pool_episodes} workers={self.workers}")
        pool = self.pool_episodes * len(self.pool_tasks)
        if self.k > pool:
            raise CurateError(f"--k {self.k} is larger than the pool ({pool} episodes); lower --k or raise --pool-episodes")

    @property
    def pool_tasks(self) -> tuple[str, ...]:
        """The targets and the tasks that look like them."""
        return tuple(dict.fromkeys([*self.task_names, *(t for target in self.task_names for t in LOOK_ALIKES.get(target, ()))]))


def build_pool(config: CompareConfig) -> Path:
    """The play pool, generated once and reused (cached under OUT/pool for the same tasks and sizes)."""
    pool = config.out / "pool"
    spec = {"tasks": config.pool_tasks, "episodes": config.pool_episodes, "recipes": POOL_RECIPES, "steps": config.steps, "size": config.pool_size, "cameras": POOL_CAMERA}
    stamp = config.out / "pool.json"
    if pool.exists() and stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(spec)):
        return pool
    generate(DatagenConfig(out=pool, tasks=config.pool_tasks, episodes_per_task=config.pool_episodes, recipes=POOL_RECIPES, cameras=(POOL_CAMERA,), size=config.pool_size, steps=config.steps, stride=2, view_seed=2, overwrite=True))
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
        train_siglip(RetrieveTrainConfig(datasets=(str(pool),), out=out, model=SiglipTrainConfig(steps=config.siglip_steps), overwrite=True))
        stamp.write_text(json.dumps(spec))
    return str(out)


def true_successes(episodes: list, target: str) -> list[int]:
    """Episodes of the target task that succeeded (from next.success), soonest success first."""
    instruction = task_descriptions()[target]
    good = [e for e in episodes if e.task == instruction and e.quality != "failure"]
    return [e.episode_index for e in sorted(good, key=lambda e: (int(np.argmax(e.success)), e.episode_index))]


@dataclass(frozen=True)
class Choice:
    """What one method trains BC on: whole episodes, cut to frame spans, or every pool frame with a weight each."""

    episodes: tuple[int, ...]
    spans: tuple[tuple[int, int], ...] | None = None  # per episode [start, end), with trimming
    weighted: bool = False  # reward-weighted BC on the episodes' frames


def selections(target: str, episodes: list, rows: pd.DataFrame, similarity: dict[int, float], k: int, seed: int) -> dict[str, Choice]:
    """What each method picks for `target` (an MT50 task name). The reward model ranks by its selection score under
    the target's instruction (final progress x match), trims its picks to their useful span, or weights every pool
    frame by its progress (`pool`: the same frames unweighted, to tell the weights from the data); SigLIP ranks by
    similarity; random; all of the target's episodes; the oracle takes the K true successes that succeeded soonest.
    Only the oracle and `all` see task labels."""
    instruction = task_descriptions()[target]
    mine = [e.episode_index for e in episodes if e.task == instruction]
    rng = np.random.default_rng(seed)
    best = rows.sort_values(["selection_score", "episode_index"], ascending=[False, True]).head(k)
    spans = tuple(useful_span(r.frame_index, r.frame_progress, r.frame_success, int(r.length), TRIM_MARGIN) for r in best.itertuples())
    by_similarity = sorted(similarity, key=lambda i: -similarity[i])
    return {
        "reward_model": Choice(tuple(int(e) for e in best["episode_index"])),
        "reward_model_trimmed": Choice(tuple(int(e) for e in best["episode_index"]), spans),
        "reward_weighted": Choice(tuple(e.episode_index for e in episodes), weighted=True),
        "pool": Choice(tuple(e.episode_index for e in episodes)),  # the same frames unweighted: what the weights add
        "siglip": Choice(tuple(by_similarity[:k])),
        "random": Choice(tuple(sorted(rng.choice([e.episode_index for e in episodes], size=k, replace=False).tolist()))),
        "all": Choice(tuple(mine)),
        "oracle": Choice(tuple(true_successes(episodes, target)[:k])),
    }


def precision(choice: Choice, episodes: list, target: str) -> float | None:
    """Share of the selection that are true successes of the target task (None for weighting the whole pool)."""
    if choice.weighted:
        return None
    good = set(true_successes(episodes, target))
    return float(np.mean([i in good for i in choice.episodes])) if choice.episodes else 0.0


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
    columns = lerobot_io.read_columns(ds, ["observation.state", "action", "index", "frame_index"])
    mean, std = lerobot_io.feature_stats(ds, "observation.state")
    say("SigLIP retrieval")
    siglip = open_siglip(siglip_model(config, pool))
    similarity = {i: retrieve(RetrieveConfig(dataset=str(pool), index=index_path, query=i), siglip=siglip) for i in instructions}
    with Index(index_path, read_only=True) as index:
        rows = index.scores(model=summary.model)
    weights_dir = config.out / "weights"
    results: dict = {"tasks": {}, "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}, "model": summary.model, "siglip": siglip.model_id, "code_version": provenance.code_version(), "created": provenance.now()}
    plan: dict[tuple[str, str, int], Choice] = {}
    weights: dict[str, np.ndarray] = {}
    for target in config.task_names:
        instruction = task_descriptions()[target]
        retrieved = dict(zip(similarity[instruction]["episode_index"], similarity[instruction]["similarity"], strict=True))
        weights[target] = _frame_weights(WeightsConfig(dataset=str(pool), index=index_path, out=weights_dir / target, instruction=instruction, model=summary.model), columns["index"])
        for seed in range(config.seeds):
            for method, choice in selections(target, episodes, rows[rows["instruction"] == instruction], retrieved, config.k, seed).items():
                if not choice.episodes:
                    raise CurateError(f"the pool has no episode for {method} to select for {target}; raise --pool-episodes")
                plan[(target, method, seed)] = choice
    runs = _bc_runs(config, columns, mean, std, plan, weights, say)
    for target in config.task_names:
        results["tasks"][target] = {}
        for method in METHODS:
            done = [runs[(target, method, seed)] for seed in range(config.seeds)]
            rates = [run["success_rate"] for run in done]
            precisions = [precision(plan[(target, method, seed)], episodes, target) for seed in range(config.seeds)]
            results["tasks"][target][method] = {
                "success_mean": float(np.nanmean(rates)), "success_std": float(np.nanstd(rates)), "success_per_seed": rates,
                "precision": None if precisions[0] is None else float(np.mean(precisions)), "selected": len(plan[(target, method, 0)].episodes),
                "frames": done[-1]["frames"], "rollout_errors": [e for run in done for e in run["errors"]],
            }
    (config.out / "results.json").write_text(json.dumps(results, indent=2))
    bar_chart(results, METHODS, config.out / "compare.png")
    (config.out / "compare.html").write_text(html_page(results, (config.out / "compare.png").read_bytes()))
    return results


def html_page(results: dict, chart_png: bytes) -> str:
    """One self-contained page: the chart and, per task and method, BC success (mean ± std over seeds) and precision."""
    import base64
    import html

    head = "".join(f"<th>{m}</th>" for m in METHODS)
    rows = "".join(
        f"<tr><td>{html.escape(task)}</td>" + "".join(
            f"<td>{v['success_mean']:.2f} ± {v['success_std']:.2f}" + ("" if v["precision"] is None else f"<br><small>p {v['precision']:.2f}</small>") + "</td>"
            for v in (by[m] for m in METHODS)) + "</tr>"
        for task, by in results["tasks"].items()
    )
    chart = base64.b64encode(chart_png).decode()
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>curate compare</title><!-- {STAMP}: curate compare -->"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "table{border-collapse:collapse}</style></head><body>"
        f"<h1>BC success per selection method</h1><p>reward model {html.escape(results['model'])}, SigLIP "
        f"{html.escape(results['siglip'])}; K = {results['config']['k']}, {results['config']['seeds']} BC seeds; p = share of the "
        "selection that are true successes of the target.</p>"
        f'<img alt="BC success rate per task and method" src="data:image/png;base64,{chart}">'
        f"<table><tr><th>task</th>{head}</tr>{rows}</table></body></html>"
    )


def summary(results: dict) -> dict:
    """Per task and method: success mean and spread over seeds, and selection precision (what `--json` writes)."""
    return {task: {method: {key: v[key] for key in ("success_mean", "success_std", "precision")} for method, v in by.items()} for task, by in results["tasks"].items()}


def _frame_weights(config: WeightsConfig, index: np.ndarray) -> np.ndarray:
    """Every pool frame's RA-BC weight under the target's instruction (the `curate weights` parquet, lerobot's weighter)."""
    path = config.out / FILENAME
    if not path.exists():
        write_weights(replace(config, overwrite=True))
    return rabc_weights(path, index.reshape(-1), WEIGHT_HORIZON)


def _run_path(config: CompareConfig, target: str, choice: Choice, seed: int) -> tuple[dict, Path]:
    """A BC run's key (what decides its result: the episodes, spans, weighting, seed and settings) and its file."""
    key = {"target": target, "episodes": sorted(choice.episodes), "spans": choice.spans, "weighted": choice.weighted, "seed": seed,
           "bc_steps": config.bc_steps, "eval_episodes": config.eval_episodes, "steps": config.steps}
    return key, config.out / "runs" / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}.json"


def _bc_runs(config: CompareConfig, columns: dict, mean: np.ndarray, std: np.ndarray, plan: dict[tuple[str, str, int], Choice], weights: dict[str, np.ndarray], say: Callable[[str], None]) -> dict[tuple[str, str, int], dict]:
    """Every planned BC run's result: read from OUT/runs/ when an earlier run (or another method that chose alike)
    made it, else trained and rolled out, `config.workers` at a time in their own processes."""
    paths = {job: _run_path(config, job[0], choice, job[2])[1] for job, choice in plan.items()}
    todo = {paths[job]: job for job in plan if not paths[job].exists()}  # one run per distinct key
    total, finished = len(todo), 0
    say(f"BC runs: {len(set(paths.values())) - total} made before, {total} to go")
    args = [(config, columns, mean, std, job[0], plan[job], weights[job[0]] if plan[job].weighted else None, job[2]) for job in todo.values()]
    if config.workers == 1:
        for a in args:
            _bc_run(*a)
            finished += 1
            say(f"BC runs: {finished}/{total} ({a[4]}, seed {a[7]})")
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
            for future in as_completed([pool.submit(_bc_run, *a) for a in args]):
                future.result()  # a failed run stops the compare here; the finished ones stay in OUT/runs/
                finished += 1
                say(f"BC runs: {finished}/{total}")
    return {job: json.loads(path.read_text()) for job, path in paths.items()}


def _one_thread() -> None:
    """A BC worker process uses one torch thread: the workers share the cores."""
    import torch

    torch.set_num_threads(1)


def _bc_run(config: CompareConfig, columns: dict, mean: np.ndarray, std: np.ndarray, target: str, choice: Choice, weights: np.ndarray | None, seed: int) -> dict:
    """Train BC on the chosen frames and roll it out; kept in OUT/runs/ under its key, so an interrupted compare
    resumes and methods that chose alike share the run."""
    key, path = _run_path(config, target, choice, seed)
    if path.exists():
        return json.loads(path.read_text())
    episode, frame = columns["episode_index"].reshape(-1), columns["frame_index"].reshape(-1)
    mask = np.isin(episode, choice.episodes)
    for chosen, (start, end) in zip(choice.episodes, choice.spans or ()):
        mask &= (episode != chosen) | ((frame >= start) & (frame < end))
    policy, _ = train_bc(columns["observation.state"][mask], columns["action"][mask], mean, std, BCConfig(steps=config.bc_steps, seed=seed), None if weights is None else weights[mask])
    result = evaluate_policy(policy.act, target, config.eval_episodes, seed=100_000 + 1000 * seed, steps=config.steps)
    run = {"key": key, "success_rate": result.success_rate, "frames": int(mask.sum()), "errors": [f"seed {s}: {e}" for s, e in zip(result.seeds, result.errors, strict=True) if e]}
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(run))
    partial.replace(path)  # whole or absent
    return run
