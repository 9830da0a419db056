"""Experiment: time-contrastive pretraining of the compact backbone's frame CNN on multi-camera renders.

The same moment of an episode seen by two cameras is a positive pair; other moments (of the same episode or
others) in the batch are negatives (InfoNCE, both directions). Each frame is augmented as the reward model's
training augments trajectories. Writes encoder.safetensors (FrameEncoder weights) and a training log.
`CURATE_INIT_ENCODER=DIR curate rm train ...` starts the reward model's CNN from it.
"""

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from curate.reward_runs import load_many
from rewardmodel.backbones import FrameEncoder
from rewardmodel.train import augment


def episodes_by_camera(trajectories):
    """[(N, S, S, 3) uint8 per camera] per episode with at least two cameras of equal length."""
    groups = defaultdict(list)
    for t in trajectories:
        groups[t.source.rsplit(":", 1)[0]].append(t.frames)
    return [views for views in groups.values() if len(views) >= 2 and len({len(v) for v in views}) == 1 and len(views[0]) >= 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64, help="positive pairs per step (two moments per episode)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--within-episode", action="store_true", help="negatives from the same episode only (TCN)")
    parser.add_argument("--moments", type=int, default=8, help="moments per episode with --within-episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    episodes = episodes_by_camera(load_many(args.dataset, args.image_size, None))
    print(f"{len(episodes)} episodes with two or more cameras", flush=True)
    encoder = FrameEncoder(args.hidden, args.width)
    projection = nn.Sequential(nn.Linear(args.hidden, args.hidden), nn.GELU(), nn.Linear(args.hidden, 64))
    params = [*encoder.parameters(), *projection.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + np.cos(np.pi * min(s / args.steps, 1.0))))
    log = []
    started = time.perf_counter()
    moments = args.moments if args.within_episode else 2
    per_step = args.batch_size // moments
    for step in range(1, args.steps + 1):
        anchors, positives, ids = [], [], []
        for k, e in enumerate(rng.integers(len(episodes), size=per_step)):
            views = episodes[e]
            for moment in np.sort(rng.choice(len(views[0]), size=min(moments, len(views[0])), replace=False)):
                i, j = rng.choice(len(views), size=2, replace=False)
                anchors.append(views[i][moment])
                positives.append(views[j][moment])
                ids.append(k)
        frames = torch.from_numpy(np.stack(anchors + positives)).unsqueeze(1)  # (2B, 1, S, S, 3): each frame its own draw
        x = augment(frames, generator)[:, 0].permute(0, 3, 1, 2).float() / 255.0
        z = F.normalize(projection(encoder(x)), dim=-1)
        a, p = z.chunk(2)
        logits = a @ p.T / args.temperature
        target = torch.arange(len(a))
        if args.within_episode:  # negatives: the same episode's other moments only, so scene colours cannot tell them apart
            episode = torch.tensor(ids)
            logits = logits.masked_fill(episode[:, None] != episode[None, :], float("-inf"))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        accuracy = (logits.argmax(1) == target).float().mean().item()
        log.append({"step": step, "loss": loss.item(), "accuracy": accuracy})
        if step % 100 == 0 or step == args.steps:
            recent = log[-100:]
            print(f"step {step}/{args.steps} loss {np.mean([r['loss'] for r in recent]):.3f} top-1 {np.mean([r['accuracy'] for r in recent]):.3f} {time.perf_counter() - started:.0f} s", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(encoder.state_dict(), out / "encoder.safetensors")
    (out / "pretrain.json").write_text(json.dumps({"args": vars(args), "log": log}))


if __name__ == "__main__":
    main()
