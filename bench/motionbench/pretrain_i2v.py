"""Fine-tune the MotionBench Wan into an image-to-video model (Wan 2.2 A14B I2V's first-frame concat), one command.

    python -m bench.motionbench.pretrain_i2v            # 2 CPU threads; writes motionbench_wan_i2v.safetensors
    python -m bench.motionbench.pretrain_i2v --heldout FILE ...   # held-out loss of I2V weights files

As Wan's I2V models were made from its T2V ones: the shipped T2V weights (motionbench_wan.safetensors) with 20 more
input channels (4 mask + 16 image, `world.first_frame_concat`) whose patch-embedding weights start at zero, then
flow matching on world clips whose latent frame 0 is given through those channels, the loss on every frame. The
rest is pretrain.py's recipe and code (Batches: fresh seeded clips, 10% empty captions, shift 3; learning_rate:
warm-up then cosine; EMA 0.995; fp16 diffusers keys), at the fine-tune's steps, batch and learning rate below.
"""

from __future__ import annotations

import argparse
import os

import torch

from . import model as mb_model
from .pretrain import PRETRAIN_SHIFT, Batches, flow_matching_loss, pretrain, write_log

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, BATCH, LR, SEED = 400, 4, 3e-4, 1  # the recipe of the shipped I2V weights (PRETRAIN.md)


@torch.no_grad()
def heldout_loss(path: str, batches: int = 8, batch: int = 8, seed: int = 99) -> float:
    """Mean image-to-video flow-matching loss of the weights at `path` on `batches` x `batch` held-out clips
    (data seed 99; fine-tuning uses 1, the T2V pre-training 0), frame 0 given, noise levels at shift 3."""
    model = mb_model.load(path)
    data = Batches(batches, batch, seed, 0, 5, PRETRAIN_SHIFT)
    return sum(flow_matching_loss(model, *data[i], first_frame=True).item() for i in range(batches)) / batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--seed", type=int, default=SEED, help="data seed (the T2V pre-training used 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (results repeat for a fixed count)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=0, help="processes that render batches (0: in the main one)")
    parser.add_argument("--init", default=mb_model.WEIGHTS, help="the T2V weights to start from")
    parser.add_argument("--out", default=mb_model.I2V_WEIGHTS)
    parser.add_argument("--log", default=os.path.join(HERE, "pretrain_i2v_log.json"))
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--heldout", nargs="+", default=[], help="instead: the held-out loss of these weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.heldout:
        for path in args.heldout:
            print(f"{path}: held-out I2V loss {heldout_loss(path):.4f}")
        return 0
    init = mb_model.i2v_from_t2v(mb_model.load(args.init))
    log = pretrain(
        args.steps, args.batch, args.lr, args.seed, args.out, shift=PRETRAIN_SHIFT, log_every=args.log_every,
        device=args.device, workers=args.workers, init=init, first_frame=True,
    )  # fmt: skip
    log["init"] = os.path.basename(args.init)
    write_log(log, args.log, args.out, "MotionBench Wan I2V fine-tune")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
