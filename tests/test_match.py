"""The match head (does the instruction fit the trajectory's task?), paraphrases in training, and the ranking rule
that uses match and progress: on tiny models, through the paths users run."""

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from tiny import TINY_EPISODES
from test_rewardmodel import TINY, pool, trajectory
from typer.testing import CliRunner

from curate.cli import app
from curate.index import Index, ScoreRow
from rewardmodel.config import CurateRewardConfig
from rewardmodel.losses import match_loss
from rewardmodel.model import CurateRewardModel, load_model
from rewardmodel.pairs import PairSampler
from rewardmodel.train import TrainConfig, train

runner = CliRunner()
RATIOS = {"rewind": 1.0, "suboptimal": 1.0, "different_task": 1.0}


def test_match_loss_weighs_matching_and_other_pairs_equally() -> None:
    logits = torch.tensor([[5.0, -5.0, -1.0], [0.0, 0.0, 2.0]])
    same = torch.tensor([[True, False, False], [False, True, False]])
    per_pair = -torch.nn.functional.logsigmoid(torch.tensor([[5.0, 5.0, 1.0], [0.0, 0.0, -2.0]]))
    expected = (per_pair[same].mean() + per_pair[~same].mean()) / 2
    assert match_loss(logits, same).item() == pytest.approx(expected.item())
    no_match = -torch.nn.functional.logsigmoid(-logits).mean()  # a batch with no matching pair: the negatives alone
    assert match_loss(logits, torch.zeros_like(same)).item() == pytest.approx(no_match.item())


def test_the_match_loss_of_equal_row_blocks_averages_to_the_whole_batch_loss_and_gradient() -> None:
    # what each torchrun rank computes on its rows: the blocks' mean is the whole batch's loss, and so is the gradient
    generator = torch.Generator().manual_seed(0)
    tasks = torch.tensor([0, 1, 0, 2, 3, 1, 2, 4])
    whole = tasks[:, None] == tasks[None]
    logits = torch.randn(8, 8, generator=generator, requires_grad=True)
    expected = match_loss(logits, whole)
    (grad_whole,) = torch.autograd.grad(expected, logits)
    blocks = [match_loss(logits[rows], whole[rows], whole) for rows in (slice(0, 4), slice(4, 8))]
    mean = torch.stack(blocks).mean()
    (grad_blocks,) = torch.autograd.grad(mean, logits)
    assert mean.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(grad_blocks, grad_whole, atol=1e-7)


def _match_loss_on_rank(rank: int, store: str, out: str) -> None:
    # one torchrun rank: its half of the rows, every rank's instructions, DDP's gradient average
    import os

    import torch.distributed as dist

    os.environ |= {"RANK": str(rank), "WORLD_SIZE": "2"}
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model, chosen, instructions, tasks = _match_loss_inputs()
    rows = slice(4 * rank, 4 * rank + 4)
    loss = model._match_loss(chosen[rows], instructions[rows], tasks[rows])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.match.named_parameters()}
    for grad in grads.values():
        dist.all_reduce(grad)
        grad /= 2
    losses = [torch.zeros(1), torch.zeros(1)]
    dist.all_gather(losses, loss.detach().view(1))
    if rank == 0:
        torch.save({"loss": torch.cat(losses).mean(), "grads": grads}, out)
    dist.destroy_process_group()


def _match_loss_inputs() -> tuple[CurateRewardModel, torch.Tensor, list[str], list[str]]:
    torch.manual_seed(0)
    model = CurateRewardModel(CurateRewardConfig(**TINY, match_weight=1.0)).eval()  # eval: no dropout to differ
    chosen = torch.randn(8, model.match.video[0].in_features)
    tasks = ["open the drawer", "press the button", "open the drawer", "close the door", "press the button", "open the drawer", "turn the tap", "close the door"]
    instructions = [t if i % 2 else "please " + t for i, t in enumerate(tasks)]  # reworded: tasks decide the matches
    return model, chosen, instructions, tasks


def test_under_torchrun_each_rank_matches_its_rows_against_every_ranks_instructions(tmp_path: Path) -> None:
    # two gloo processes, each with 4 of the 8 rows, end with the loss and the gradient one process gets on all 8
    torch.multiprocessing.spawn(_match_loss_on_rank, args=(str(tmp_path / "store"), str(tmp_path / "ranks.pt")), nprocs=2)
    ranks = torch.load(tmp_path / "ranks.pt")
    model, chosen, instructions, tasks = _match_loss_inputs()
    loss = model._match_loss(chosen, instructions, tasks)
    loss.backward()
    assert ranks["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    for name, p in model.match.named_parameters():
        assert torch.allclose(ranks["grads"][name], p.grad, atol=1e-6), name
    alone = model._match_loss(chosen[:4], instructions[:4], tasks[:4])  # what a rank saw before: its own rows only
    assert abs(alone.item() - loss.item()) > 1e-3


def test_paraphrased_rows_keep_their_task_and_runs_without_paraphrases_keep_their_pairs() -> None:
    words = {"open the drawer": ("pull out the drawer", "slide the drawer out")}
    batch = PairSampler(pool(), 4, RATIOS, seed=0, paraphrases=words).batch(32)
    used = {(i, t) for i, t in zip(batch.instructions, batch.tasks, strict=True)}
    assert ("pull out the drawer", "open the drawer") in used or ("slide the drawer out", "open the drawer") in used
    assert ("open the drawer", "open the drawer") in used  # half the time the instruction's own words
    assert all(i == t for i, t in zip(batch.instructions, batch.tasks, strict=True) if t != "open the drawer")
    plain, empty = PairSampler(pool(), 4, RATIOS, seed=0).batch(8), PairSampler(pool(), 4, RATIOS, seed=0, paraphrases={}).batch(8)
    assert plain.instructions == empty.instructions and torch.equal(plain.frames_a, empty.frames_a)


def test_a_model_with_a_match_head_trains_it_saves_it_and_scores_with_it(tmp_path: Path) -> None:
    config = CurateRewardConfig(**TINY, match_weight=1.0)
    model, history = train(pool(), config, TrainConfig(steps=2, batch_size=4, paraphrases=True))
    model.save_pretrained(tmp_path / "rm")
    assert all("match" in logs and np.isfinite(logs["match"]) for logs in history)
    loaded = load_model(tmp_path / "rm")
    frames = torch.from_numpy(np.stack([pool()[0].frames[:4]] * 2))
    progress, success, match = loaded.predict_all(frames, ["open the drawer", "press the button"])
    assert progress.shape == success.shape == (2, 4) and match.shape == (2,) and ((match >= 0) & (match <= 1)).all()
    again = model.eval().predict_all(frames, ["open the drawer", "press the button"])[2]
    assert torch.allclose(match, again)
    assert torch.allclose(loaded.predict(frames, ["open the drawer", "press the button"])[0], progress)


@pytest.mark.parametrize("source", ["own", "shared"])
def test_the_match_loss_reaches_the_progress_cnn_only_when_it_shares_it(source: str) -> None:
    only_match = dict(progress_weight=0.0, success_weight=0.0, preference_weight=0.0, rank_weight=0.0)
    model = CurateRewardModel(CurateRewardConfig(**TINY, match_weight=1.0, match_source=source, **only_match))
    loss, _ = model(PairSampler(pool(), 4, RATIOS, seed=0).batch(4))
    loss.backward()
    reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.frames.parameters())
    assert reached == (source == "shared")
    if source == "own":
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.match_frames.parameters())


def test_a_match_head_with_its_own_cnn_round_trips_and_scores_densely_as_in_one_pass(tmp_path: Path) -> None:
    model, _ = train(pool(), CurateRewardConfig(**TINY, match_weight=1.0, match_source="own"), TrainConfig(steps=2, batch_size=4))
    model.save_pretrained(tmp_path / "rm")
    loaded = load_model(tmp_path / "rm")
    assert loaded.config.match_source == "own" and loaded.backbone.match_frames is not None
    frames = torch.from_numpy(pool()[0].frames[:4])
    instructions = ["open the drawer", "press the button"]
    with torch.inference_mode():
        progress, success, match = loaded.predict_all(frames.unsqueeze(0).expand(2, -1, -1, -1, -1), instructions)
        dense_progress, dense_success, dense_match = loaded.predict_grids(frames, [np.arange(t + 1) for t in range(4)], instructions)
        assert torch.allclose(model.eval().predict_all(frames.unsqueeze(0).expand(2, -1, -1, -1, -1), instructions)[2], match)
    assert torch.allclose(dense_progress, progress, atol=1e-5) and torch.allclose(dense_success, success, atol=1e-5)
    assert torch.allclose(dense_match, match, atol=1e-5)


def test_an_unknown_match_source_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown match_source 'mine'; valid: shared, own"):
        CurateRewardConfig(match_source="mine")


def test_a_checkpoint_without_a_match_head_still_loads_and_has_none(tmp_path: Path) -> None:
    train(pool(), CurateRewardConfig(**TINY), TrainConfig(steps=1, batch_size=2))[0].save_pretrained(tmp_path / "old")
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    saved.pop("match_weight"), saved.pop("match_dim")  # as the checkpoints made before the match head were written
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    model = load_model(tmp_path / "old")
    assert model.match is None
    assert model.predict_all(torch.zeros(1, 3, 16, 16, 3, dtype=torch.uint8), ["x"])[2] is None


def test_the_qwen3vl_backbone_cannot_have_a_match_head() -> None:
    with pytest.raises(ValueError, match="gives no instruction-free trajectory summary"):
        CurateRewardConfig(backbone="qwen3vl", match_weight=1.0)


def test_scores_carry_match_and_rank_by_progress_times_match(tiny_dataset: Path, tmp_path: Path) -> None:
    config = CurateRewardConfig(**TINY, match_weight=1.0)
    model, _ = train([trajectory("open the drawer", "successful"), trajectory("press the button", "successful", seed=3)], config, TrainConfig(steps=1, batch_size=2))
    model.save_pretrained(tmp_path / "rm")
    index = tmp_path / "i.duckdb"
    result = runner.invoke(app, ["score", str(tiny_dataset), "--index", str(index), "--model", str(tmp_path / "rm"), "--frames", "4", "--instruction", "open the drawer"])
    assert result.exit_code == 0, result.output
    db = duckdb.connect(str(index), read_only=True)
    rows = db.execute("SELECT episode_index, instruction, final_progress, match_prob FROM scores ORDER BY episode_index, instruction").fetchall()
    db.close()
    assert len(rows) == 6 and all(0 <= m <= 1 for *_, m in rows)
    ranked = runner.invoke(app, ["rank", "--index", str(index), "--instruction", "open the drawer", "--format", "json"])
    order = [(r["episode_index"], r["selection_score"]) for r in json.loads(ranked.output)]
    expected = sorted(((e, p * m) for e, i, p, m in rows if i == "open the drawer"), key=lambda x: -x[1])
    assert [e for e, _ in order] == [e for e, _ in expected] and [s for _, s in order] == pytest.approx([s for _, s in expected], rel=1e-4)


def match_index(path: Path, dataset: Path) -> Path:
    """Scores chosen by hand: episode 0 far along but another task's (low match), episode 3 a bit less far and a match."""
    finals, matches = {0: 0.95, 1: 0.3, 2: 0.6, 3: 0.8}, {0: 0.1, 1: 0.9, 2: None, 3: 0.95}
    with Index(path) as index:
        index.write(
            ScoreRow(str(dataset.resolve()), e, "do the task", "m@1", "run", TINY_EPISODES[e][0], TINY_EPISODES[e][1], finals[e], 0.5, 0.5, (0, 5), (0.1, finals[e]), (0.0, 0.5), matches[e])
            for e in range(4)
        )
    return path


def test_rank_and_filter_use_match_and_progress_and_min_match_says_why(tiny_dataset: Path, tmp_path: Path) -> None:
    index = match_index(tmp_path / "m.duckdb", tiny_dataset)
    ranked = runner.invoke(app, ["rank", "--index", str(index), "--instruction", "do the task", "--format", "json"])
    assert [r["episode_index"] for r in json.loads(ranked.output)] == [3, 2, 1, 0]  # 0.76, 0.6 (no match: 1), 0.27, 0.095
    table = runner.invoke(app, ["rank", "--index", str(index), "--instruction", "do the task"])
    assert "match" in table.output and "0.950" in table.output
    out = tmp_path / "best"
    result = runner.invoke(app, ["filter", "--index", str(index), "--instruction", "do the task", "--min-match", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dropped: match probability below 0.5" in result.output
    manifest = json.loads((out / "curate_selection.json").read_text())
    assert [e["source_episode_index"] for e in manifest["episodes"]] == [1, 2, 3]  # 2 has no match head score: kept
    assert manifest["dropped"] == {"match probability below 0.5": 1}
    assert [e["match_prob"] for e in manifest["episodes"]] == [0.9, None, 0.95]


def test_a_version_1_index_is_read_and_migrated(tiny_dataset: Path, tmp_path: Path) -> None:
    from tiny import known_index

    index = known_index(tmp_path / "old.duckdb", tiny_dataset)
    db = duckdb.connect(str(index))
    db.execute("DROP VIEW episode_scores; ALTER TABLE scores DROP COLUMN match_prob; UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.execute("ALTER TABLE runs DROP COLUMN stride; DROP TABLE camera_scores")  # nor had it dense runs or cameras
    db.execute("CREATE VIEW episode_scores AS SELECT dataset, episode_index, instruction, model, final_progress, mean_progress, success_prob, frame_index, frame_progress FROM scores")
    db.close()
    ranked = runner.invoke(app, ["rank", "--index", str(index), "--instruction", "do the task", "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    assert [r["episode_index"] for r in json.loads(ranked.output)] == [3, 0, 2, 1]  # by progress alone
    with Index(index, read_only=True) as old:  # read as it is
        assert set(old.done(str(tiny_dataset.resolve()), "m@1").values()) == {(None, None, None)} and old.camera_scores().empty
    with Index(index) as writable:  # opened for writing: migrated
        assert writable.scores("do the task")["match_prob"].isna().all()
        assert writable.camera_scores().empty and set(writable.done(str(tiny_dataset.resolve()), "m@1").values()) == {(None, None, None)}
    db = duckdb.connect(str(index), read_only=True)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
    db.close()
