"""Issue 4, benchmark 3: what head-restricted LoRA training costs on top of the frozen model.

Compares, in one run and on the same sparse temporal input (5 latent frames), the time per step of
(a) forward + backward through the frozen model alone (input gradient only, no optimizer) and
(b) a full temporal LoRA training step (rank 128 on half the heads of every layer, motion loss, AdamW).
Target: (b) / (a) - 1 under 15%. Run: python bench/lora_overhead.py [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import time_it, train_step_times, write  # noqa: E402
from bench.sparse_vs_full import half_temporal_map  # noqa: E402
from fym.config import TEMPORAL  # noqa: E402
from fym.diffusers_host import DiffusersWan, tiny_wan  # noqa: E402
from fym.train import train_stage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--latent-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = tiny_wan(num_layers=args.layers, num_heads=args.heads, head_dim=128, ffn_dim=4 * 128 * args.heads,
                     text_dim=512).to(device)
    host = DiffusersWan(model)
    model.requires_grad_(False)
    video = torch.randn(1, 16, 5, args.latent_size, args.latent_size, device=device)
    context = torch.randn(1, 64, 512, device=device)
    sigma = torch.tensor([0.5], device=device)

    def frozen_step():
        x_t = video.clone().requires_grad_(True)
        F.mse_loss(host.velocity(x_t, sigma, context, torch.arange(5.0) * 5), video).backward()

    frozen = time_it(frozen_step, device, warmup=1, repeats=args.repeats)
    config = replace(TEMPORAL, steps=args.repeats + 1, sparse_sampling=False)  # the 5 frames are the whole input
    lora = train_step_times(
        lambda on_step: train_stage(host, "temporal", video, context, half_temporal_map(host.shape), config, on_step),
        device,
    )
    overhead = lora["median_s"] / frozen["median_s"] - 1
    path = write("lora_overhead", {"config": vars(args), "frozen_forward_backward": frozen, "lora_train_step": lora,
                                   "overhead": overhead})
    print(f"frozen fwd+bwd {frozen['median_s'] * 1e3:.0f} ms, LoRA step {lora['median_s'] * 1e3:.0f} ms: "
          f"overhead {overhead * 100:.1f}% -> {path}")


if __name__ == "__main__":
    main()
