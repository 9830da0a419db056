"""The reward model on tiny configs: losses, causal layout, pair strategies, metrics, training, checkpoints."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardmodel.backbones import layout_mask
from rewardmodel.config import CurateRewardConfig
from rewardmodel.errors import RewardModelError
from rewardmodel.losses import two_hot
from rewardmodel.evaluate import final_progress_selector, instruction_auc, top_k_breakdown, top_k_precision
from rewardmodel.metrics import ScoredTrajectory, failure_f1, kendall_by_quality, kendall_tau_a, roc_auc, voc
from rewardmodel.model import CurateRewardModel, load_model
from rewardmodel.pairs import STRATEGIES, PairSampler, progress_targets
from rewardmodel.records import Trajectory
from rewardmodel.resume import Resume, digest
from rewardmodel.train import TrainConfig, augment, train

TINY = dict(image_size=16, hidden_dim=32, num_layers=1, num_heads=2, num_frames=4, max_frames=8)


def trajectory(instruction: str, quality: str, n: int = 12, first_success: int | None = 6, seed: int = 0) -> Trajectory:
    rng = np.random.default_rng(seed)
    success = np.zeros(n, dtype=bool)
    if quality != "failure":
        success[first_success:] = True
    return Trajectory(rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8), np.arange(n), n, instruction, success, quality)


def pool() -> list[Trajectory]:
    return [
        trajectory("open the drawer", "successful", seed=1),
        trajectory("open the drawer", "failure", seed=2),
        trajectory("press the button", "successful", first_success=4, seed=3),
        trajectory("press the button", "suboptimal", first_success=10, seed=4),
    ]


def test_two_hot_splits_mass_between_neighbouring_bins() -> None:
    out = two_hot(torch.tensor([0.0, 0.5, 1.0, 0.05]), 10)
    assert out[0].tolist() == [1.0] + [0.0] * 9
    assert out[2].tolist() == [0.0] * 9 + [1.0]
    assert torch.allclose(out[1][4:6], torch.tensor([0.5, 0.5]))  # 0.5 sits between centres 4/9 and 5/9
    assert torch.allclose(out[3][:2], torch.tensor([0.55, 0.45]))
    assert torch.allclose(out.sum(-1), torch.ones(4))
    assert torch.allclose(out @ torch.linspace(0, 1, 10), torch.tensor([0.0, 0.5, 1.0, 0.05]))


def test_layout_mask_is_causal_within_each_trajectory() -> None:
    blocked = layout_mask(2, 2)  # [instr, a1, a2, split, b1, b2, pref]
    allowed = (~blocked).int().tolist()
    assert allowed[1] == [1, 1, 0, 0, 0, 0, 0]  # a1 sees the instruction and itself
    assert allowed[2] == [1, 1, 1, 0, 0, 0, 0]
    assert allowed[4] == [1, 0, 0, 0, 1, 0, 0]  # b1 never sees trajectory A
    assert allowed[6] == [1] * 7  # the preference token sees everything


def test_progress_of_a_trajectory_is_the_same_alone_in_a_pair_and_ignores_later_frames() -> None:
    torch.manual_seed(0)
    model = CurateRewardModel(CurateRewardConfig(**TINY)).eval()
    a = torch.randint(0, 255, (2, 4, 16, 16, 3), dtype=torch.uint8)
    b = torch.randint(0, 255, (2, 4, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        alone, _ = model.predict(a, ["open the drawer"] * 2)
        paired = model.backbone(model.prepare(a), ["open the drawer"] * 2, model.prepare(b)).frames_a
        in_pair = model.heads.expected_progress(model.heads.progress(paired))
        changed = a.clone()
        changed[:, 3] = 0
        later_changed, _ = model.predict(changed, ["open the drawer"] * 2)
    assert torch.allclose(alone, in_pair, atol=1e-5)
    assert torch.allclose(alone[:, :3], later_changed[:, :3], atol=1e-5)
    assert not torch.allclose(alone[:, 3], later_changed[:, 3])
    assert ((alone >= 0) & (alone <= 1)).all()


def test_progress_targets_follow_robometer() -> None:
    # segment starts at 2, first success at 6: cutoff 7, target (i - 2) / 4 capped at 1
    assert progress_targets(np.array([2, 3, 4, 6, 9]), 2, 6).tolist() == [0.0, 0.25, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_gives_its_targets(strategy: str) -> None:
    sampler = PairSampler(pool(), num_frames=4, ratios={strategy: 1.0}, seed=0)
    batch = sampler.batch(8)
    assert batch.strategies == [strategy] * 8
    assert batch.frames_a.shape == (8, 4, 16, 16, 3)
    for i in range(8):
        better = int(batch.a_is_better[i])
        chosen = (batch.progress_a if better else batch.progress_b)[i]
        rejected = (batch.progress_b if better else batch.progress_a)[i]
        rejected_mask = (batch.progress_mask_b if better else batch.progress_mask_a)[i]
        assert torch.all(chosen[1:] >= chosen[:-1]) and chosen[-1] == 1.0  # chosen segments reach success
        if strategy == "rewind":
            peak = int(rejected.argmax())
            assert torch.all(rejected[1 : peak + 1] >= rejected[:peak]) and torch.all(rejected[peak + 1 :] <= rejected[peak:-1])
        if strategy == "reverse":
            assert torch.all(rejected[1:] <= rejected[:-1]) and rejected[0] == 1.0
        if strategy in ("different_task", "similar_task"):
            assert rejected.tolist() == [0.0] * 4 and bool(rejected_mask.all())
        if strategy in ("suboptimal", "late_success"):
            assert not bool(rejected_mask.any())  # no progress supervision on suboptimal or failed runs
        if strategy == "late_success":  # both whole episodes of the button task, the one with a suboptimal run
            assert batch.instructions[i] == "press the button" and chosen.tolist() == [0.0, 1.0, 1.0, 1.0]  # frames 0, 4, 7, 11; success from 4
            rejected_success = (batch.success_b if better else batch.success_a)[i]
            assert rejected_success.tolist() == [0.0, 0.0, 0.0, 1.0]  # its own labels: success only at the end


def test_similar_task_negatives_come_from_the_nearest_instructions() -> None:
    tasks = ["open the drawer", "open the door", "press the button", "pick up the puck", "turn the dial"]
    sampler = PairSampler([trajectory(t, "successful", seed=i) for i, t in enumerate(tasks)], 4, {"similar_task": 1}, seed=0)
    assert sampler.similar["open the drawer"][0] == "open the door" and sampler.similar["open the door"][0] == "open the drawer"
    assert all(len(near) == 3 and name not in near for name, near in sampler.similar.items())


def test_sampler_is_deterministic_and_needs_successes() -> None:
    first = PairSampler(pool(), 4, {"reverse": 1, "rewind": 1}, seed=3).batch(6)
    second = PairSampler(pool(), 4, {"reverse": 1, "rewind": 1}, seed=3).batch(6)
    assert torch.equal(first.progress_a, second.progress_a) and first.strategies == second.strategies
    only_drawer = [t for t in pool() if t.instruction == "open the drawer"]
    with pytest.raises(RewardModelError, match="cannot provide rejected trajectories for different_task"):
        PairSampler(only_drawer, 4, {"different_task": 1}, 0).batch(2)
    with pytest.raises(RewardModelError, match="no successful episodes to train on"):
        PairSampler([trajectory("x", "failure")], 4, {"rewind": 1}, 0)


def test_kendall_tau_a_counts_ties_as_zero() -> None:
    assert kendall_tau_a([0.1, 0.5, 0.9], [0, 1, 2]) == 1.0
    assert kendall_tau_a([0.9, 0.5, 0.1], [0, 1, 2]) == -1.0
    assert kendall_tau_a([0.5, 0.5, 0.9], [0, 1, 2]) == pytest.approx(2 / 3)


def scored(task: str, quality: str, final: float, peak_success: float, progress: list[float] | None = None) -> ScoredTrajectory:
    values = np.array(progress or [0.0, final])
    truth = np.linspace(0, 1, len(values)) if quality == "successful" else None
    return ScoredTrajectory(task, quality, values, np.array([0.0, peak_success]), truth)


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1], [0.9]) == 0.0
    assert roc_auc([0.5, 0.9], [0.5, 0.1]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)


def test_instruction_auc_scores_every_success_under_every_instruction() -> None:
    # each task's frames carry its own grey level
    levels = {"open the drawer": 40, "open the door": 120, "press the button": 200}

    def trajectory(task: str, quality: str = "successful", level: int | None = None) -> Trajectory:
        frames = np.full((6, 8, 8, 3), levels[task] if level is None else level, dtype=np.uint8)
        return Trajectory(frames, np.arange(6), 6, task, np.array([0, 0, 0, 1, 1, 1] if quality == "successful" else [0] * 6, dtype=bool), quality)

    # a failed door run that looks like a drawer: counted, it would pull both instructions' AUC below 1
    trajectories = [trajectory(task) for task in levels for _ in range(2)] + [trajectory("open the door", "failure", levels["open the drawer"])]

    def knows_the_task(frames: torch.Tensor, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        match = torch.tensor([float(f.float().mean() == levels[i]) for f, i in zip(frames, instructions, strict=True)])
        progress = (0.2 + 0.7 * match)[:, None].expand(frames.shape[:2])
        return progress, progress

    def ignores_it(frames: torch.Tensor, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        progress = torch.full(frames.shape[:2], 0.9)
        return progress, progress

    knows, ignores = final_progress_selector(knows_the_task), final_progress_selector(ignores_it)
    assert instruction_auc(knows, trajectories, 4) == 1.0
    assert instruction_auc(ignores, trajectories, 4) == 0.5
    assert np.isnan(instruction_auc(knows, [trajectory("open the door")], 4))
    # other words for a task are scored in its place; a task without any is left out
    words = {"open the drawer": ("pull out the drawer",), "open the door": ("swing the door open",)}
    levels |= {"pull out the drawer": 40, "swing the door open": 120}
    assert instruction_auc(knows, trajectories, 4, phrasings=words) == 1.0
    # top-k: under each task's words, the share of the k best that are that task's runs that succeeded
    pool = trajectories + [trajectory("press the button", "failure")]
    assert top_k_precision(knows, pool, 4, k=2) == 1.0
    assert top_k_precision(knows, pool, 4, k=2, phrasings={"open the door": ("swing the door open",)}) == 1.0
    # ties keep pool order, so the two drawer runs come first under every instruction: right for the drawer only
    assert top_k_precision(ignores, pool, 4, k=2) == pytest.approx(np.mean([1, 0, 0]))
    # a task with fewer successes than k is judged on as many as it has: k=5 cuts at each task's 2
    assert top_k_precision(knows, pool, 4, k=5) == 1.0 and top_k_precision(ignores, pool, 4, k=5) == pytest.approx(np.mean([1, 0, 0]))
    # the picks sorted into their kinds: the door and button instructions pick the two drawer runs (another task)
    assert top_k_breakdown(ignores, pool, 4, k=2) == pytest.approx({"right": 1 / 3, "failed": 0.0, "other task": 2 / 3})
    # a failed door run that looks like one (first in pool order) takes one of the door instruction's two places
    failed_first = [trajectory("open the door", "failure")] + pool
    assert top_k_breakdown(knows, failed_first, 4, k=2) == pytest.approx({"right": np.mean([1, 0.5, 1]), "failed": 0.5 / 3, "other task": 0.0})


def test_alignment_metrics_on_known_scores() -> None:
    items = [
        scored("t1", "failure", 0.2, 0.1),
        scored("t1", "suboptimal", 0.5, 0.7),
        scored("t1", "successful", 0.9, 0.9, [0.1, 0.4, 0.9]),
        scored("t2", "failure", 0.6, 0.8),  # a failure scored above a success: discordant, and missed as a failure
        scored("t2", "successful", 0.4, 0.9, [0.4, 0.3, 0.2]),
    ]
    assert kendall_by_quality(items) == pytest.approx((1.0 + -1.0) / 2)
    assert voc(items) == pytest.approx((np.corrcoef([0.1, 0.4, 0.9], [0, 0.5, 1])[0, 1] + -1.0) / 2)
    # failures detected (max success < 0.5): only t1's; precision 1, recall 1/2
    assert failure_f1(items) == pytest.approx(2 / 3)


def test_augmentation_moves_a_trajectory_as_one_and_each_differently() -> None:
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    frames = image.expand(6, 4, 16, 16, 3).contiguous()  # six trajectories of four identical frames
    out = augment(frames, torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert all(torch.equal(out[i, 0], out[i, j]) for i in range(6) for j in range(4))  # one transform per trajectory
    assert len({out[i, 0].numpy().tobytes() for i in range(6)}) == 6  # a different one for each
    assert torch.equal(out, augment(frames, torch.Generator().manual_seed(0)))  # reproducible from the seed


def test_train_saves_a_checkpoint_that_loads_identically(tmp_path: Path) -> None:
    config = CurateRewardConfig(**TINY)
    model, history = train(pool(), config, TrainConfig(steps=3, batch_size=4, eval_every=3), eval_trajectories=pool())
    model.save_pretrained(tmp_path / "rm")
    assert [h["step"] for h in history] == [1.0, 2.0, 3.0]
    assert "eval_kendall_tau_a" in history[-1] and np.isfinite(history[-1]["loss"])
    loaded = load_model(tmp_path / "rm")
    frames = torch.randint(0, 255, (1, 4, 32, 32, 3), dtype=torch.uint8)  # another resolution than trained on
    with torch.no_grad():
        assert torch.allclose(model.predict(frames, ["open the drawer"])[0], loaded.predict(frames, ["open the drawer"])[0])


def test_an_interrupted_training_resumes_and_ends_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    config, settings = CurateRewardConfig(**TINY, match_weight=1.0), TrainConfig(steps=6, batch_size=4, seed=0)
    whole, whole_history = train(pool(), config, settings)

    def stop_at_step_5(step: int, logs: dict[str, float]) -> None:
        if step == 5:
            raise KeyboardInterrupt

    state = Resume(tmp_path / "state.pt", '{"run": "the same"}', every=2)
    with pytest.raises(KeyboardInterrupt):
        train(pool(), config, settings, on_log=stop_at_step_5, resume_from=state)
    assert torch.load(state.path, weights_only=True)["step"] == 4
    resumed: list[int] = []
    model, history = train(pool(), config, settings, resume_from=state, on_resume=resumed.append)
    assert resumed == [4] and [h["step"] for h in history] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [h["loss"] for h in history] == [h["loss"] for h in whole_history]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), model.state_dict().values(), strict=True))

    # the data is part of the settings: the same trajectories give the same digest, one changed pixel another
    changed = pool()
    changed[2].frames[-1, 0, 0, 0] ^= 1
    assert digest(pool()) == digest(pool()) != digest(changed)

    # a state saved under other settings, or unreadable, is not resumed from: the run starts over
    for other in (Resume(state.path, '{"run": "another"}', every=2), Resume(tmp_path / "junk.pt", '{"run": "the same"}')):
        (tmp_path / "junk.pt").write_text("not a training state")
        resumed.clear()
        _, history = train(pool(), config, settings, resume_from=other, on_resume=resumed.append)
        assert resumed == [] and len(history) == 6


def test_bad_checkpoints_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    train(pool(), CurateRewardConfig(**TINY), TrainConfig(steps=1, batch_size=2))[0].save_pretrained(tmp_path / "rm")
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "rm", other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config | {"type": "sarm"}))
    with pytest.raises(RewardModelError, match="holds a 'sarm' model, not 'curate_robometer'"):
        load_model(other)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tmp_path / "rm", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(RewardModelError, match="the checkpoint is corrupt"):
        load_model(corrupt)
    with pytest.raises(RewardModelError, match="is not a reward model checkpoint"):
        load_model(tmp_path / "missing")


def test_a_nan_loss_stops_training_naming_the_step(tmp_path: Path) -> None:
    config = CurateRewardConfig(**TINY, rank_weight=float("nan"))
    with pytest.raises(RewardModelError, match="the loss became nan at step 1"):
        train(pool(), config, TrainConfig(steps=2, batch_size=2))


# A tiny random Qwen3-VL (FACTS.md: explicit head_dim, mrope_section summing to head_dim / 2, vision out size = text
# hidden size, a square number of position embeddings, special token ids inside the vocabulary).
TINY_QWEN = {
    "text_config": {
        "vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True},
    },
    "vision_config": {
        "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 8, "temporal_patch_size": 2,
        "spatial_merge_size": 2, "out_hidden_size": 64, "num_position_embeddings": 16, "deepstack_visual_indexes": [1],
    },
    "image_token_id": 290, "video_token_id": 291, "vision_start_token_id": 292, "vision_end_token_id": 293,
}


def test_qwen3vl_backbone_trains_the_full_loss_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = CurateRewardConfig(backbone="qwen3vl", image_size=16, num_frames=4, qwen_config=TINY_QWEN)
    model, history = train(pool(), config, TrainConfig(steps=2, batch_size=2))
    assert all(np.isfinite(h["loss"]) and h["preference"] > 0 and h["progress"] > 0 for h in history)
    assert all(p.grad is not None for p in model.parameters())  # every part, vision tower included, is trained
    model.save_pretrained(tmp_path / "qwen")
    loaded = load_model(tmp_path / "qwen")
    frames = torch.randint(0, 255, (2, 4, 24, 24, 3), dtype=torch.uint8)
    with torch.no_grad():
        progress, success = loaded.predict(frames, ["open the drawer", "press the button"])
        assert torch.allclose(progress, model.predict(frames, ["open the drawer", "press the button"])[0], atol=1e-5)
        # frame t's progress does not depend on later frames (causal sequence)
        changed = frames.clone()
        changed[:, 3] = 0
        assert torch.allclose(progress[:, :3], loaded.predict(changed, ["open the drawer", "press the button"])[0][:, :3], atol=1e-5)
        # dense scoring through whole frames (this backbone has no per-frame encoding): grids of one episode agree
        dense, _, match = loaded.predict_grids(frames[0], [np.arange(t + 1) for t in range(4)], ["open the drawer"])
        assert match is None and torch.allclose(dense[0], progress[0], atol=1e-4)
        # several instructions on one episode (how `curate score` asks): each row on its owner's frames
        owned = loaded.predict_all(frames, ["press the button", "open the drawer", "open the drawer"], torch.tensor([1, 0, 1]))[0]
        assert torch.allclose(owned, loaded.predict(frames[[1, 0, 1]], ["press the button", "open the drawer", "open the drawer"])[0], atol=1e-5)
    assert progress.shape == success.shape == (2, 4)
    with pytest.raises(ValueError, match="must be a multiple of patch_size x spatial_merge_size = 16"):
        CurateRewardModel(CurateRewardConfig(backbone="qwen3vl", image_size=24, num_frames=4, qwen_config=TINY_QWEN))


def test_unknown_backbone_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vit'; valid backbones: compact, qwen3vl"):
        CurateRewardConfig(backbone="vit")


def test_mirror_average_is_the_mean_over_the_clip_and_its_mirror_in_every_output(tmp_path: Path) -> None:
    model, _ = train(pool(), CurateRewardConfig(**TINY, match_weight=1.0), TrainConfig(steps=2, batch_size=4, seed=0))
    model.save_pretrained(tmp_path / "one")
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["mirror_average"] is False  # the config's default, as in checkpoints saved before the field existed
    model.config.mirror_average = True
    model.save_pretrained(tmp_path / "both")
    one, both = load_model(tmp_path / "one"), load_model(tmp_path / "both")
    frames = torch.from_numpy(np.stack([t.frames[:4] for t in pool()[:3]]))
    mirrored = frames.flip(-2)  # (B, T, H, W, 3): left and right swapped
    assert not torch.equal(frames, mirrored)
    instructions = ["open the drawer", "press the button", "open the drawer"]
    with torch.inference_mode():
        for averaged, x, y in zip(both.predict_all(frames, instructions), one.predict_all(frames, instructions), one.predict_all(mirrored, instructions), strict=True):
            assert torch.allclose(averaged, (x + y) / 2, atol=1e-6) and not torch.allclose(x, y, atol=1e-6)
        grids = [np.arange(t + 1) for t in range(4)]
        for averaged, x, y in zip(both.predict_grids(frames[0], grids, instructions[:2]), one.predict_grids(frames[0], grids, instructions[:2]), one.predict_grids(mirrored[0], grids, instructions[:2]), strict=True):
            assert torch.allclose(averaged, (x + y) / 2, atol=1e-6)
        mean = (one.preference_probability(frames[:1], frames[1:2], ["x"]) + one.preference_probability(mirrored[:1], mirrored[1:2], ["x"])) / 2
        assert torch.allclose(both.preference_probability(frames[:1], frames[1:2], ["x"]), mean, atol=1e-6)
