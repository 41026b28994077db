"""Check that the MotionBench Wan, converted with `to_comfy_state_dict`, is ComfyUI's Wan 2.1 T2V model.

    python -m bench.motionbench.check_comfy --comfy-dir /path/to/ComfyUI --comfy-python /path/to/python

Writes the ComfyUI-keyed weights (fp16, as shipped) to a temporary file, loads it in a second Python that has
ComfyUI with `comfy.sd.load_diffusion_model` (what UNETLoader calls), checks the detected model class is
WAN21_T2V with 4 heads and 4 layers, runs its WanModel on a fixed input and compares with diffusers' output.
Prints the largest absolute difference; exits 1 if the check fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

from . import model as mb_model
from . import world

_COMFY_SIDE = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import comfy.sd
patcher = comfy.sd.load_diffusion_model(sys.argv[2], model_options={"dtype": torch.float32})
name = type(patcher.model.model_config).__name__
dm = patcher.model.diffusion_model
print("detected", name, "heads", dm.num_heads, "layers", len(dm.blocks), "dim", dm.dim, "ffn", dm.ffn_dim)
assert name == "WAN21_T2V" and dm.num_heads == 4 and len(dm.blocks) == 4, name
io = torch.load(sys.argv[3])
with torch.no_grad():
    out = dm(io["x"], io["t"], io["context"]).float()
diff = (out - io["out"]).abs().max().item()
scale = io["out"].abs().max().item()
print(f"max |comfy - diffusers| = {diff:.2e} (output max {scale:.2f})")
sys.exit(0 if diff < 1e-3 * max(scale, 1.0) else 1)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy-dir", required=True, help="a ComfyUI checkout")
    parser.add_argument("--comfy-python", default=sys.executable, help="a Python with ComfyUI's requirements")
    parser.add_argument("--weights", default=mb_model.WEIGHTS)
    args = parser.parse_args(argv)
    model = mb_model.load(args.weights)
    state = {k: v.to(torch.float16).contiguous() for k, v in mb_model.to_comfy_state_dict(model).items()}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, world.FRAMES, world.SIZE, world.SIZE, generator=generator)
    t = torch.tensor([700.0])
    context = world.embed(["red", "ball", "moves", "on", "meadow"])[None]
    with torch.no_grad():
        out = model(hidden_states=x, timestep=t, encoder_hidden_states=context, return_dict=False)[0]
    with tempfile.TemporaryDirectory() as folder:
        weights = os.path.join(folder, "motionbench_wan_comfy.safetensors")
        save_file(state, weights)
        io_path = os.path.join(folder, "io.pt")
        torch.save({"x": x, "t": t, "context": context, "out": out}, io_path)
        script = os.path.join(folder, "comfy_side.py")
        with open(script, "w") as handle:
            handle.write(_COMFY_SIDE)
        result = subprocess.run([args.comfy_python, script, os.path.abspath(args.comfy_dir), weights, io_path])
    print("OK: ComfyUI loads the converted weights as WAN21_T2V and matches diffusers" if result.returncode == 0
          else "FAILED")  # fmt: skip
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
