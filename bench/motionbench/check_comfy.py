"""Check that the MotionBench Wans, converted with `to_comfy_state_dict`, are ComfyUI's Wan models.

    python -m bench.motionbench.check_comfy --comfy-dir /path/to/ComfyUI --comfy-python /path/to/python

Writes the ComfyUI-keyed weights (fp16, as shipped) to a temporary file, loads it in a second Python that has
ComfyUI with `comfy.sd.load_diffusion_model` (what UNETLoader calls), checks the detected model class is
WAN21_T2V with 4 heads and 4 layers, runs its WanModel on a fixed input and compares with diffusers' output.

Then the same for the image-to-video model (`--i2v-weights`, if the file exists): detected as WAN21_T2V with
in_dim 36, and run through ComfyUI's own conditioning path, as its samplers do: `model.extra_conds(cross_attn=...,
concat_latent_image=..., concat_mask=..., noise=...)` (WAN21.concat_cond builds the mask + image channels; the
image goes in as `process_latent_out` of the latent because ComfyUI applies `process_latent_in` to it, the mask
is 0 where given because ComfyUI uses 1 - mask), each cond's `process_cond(...).cond`, then
`model.apply_model(x_t, sigma, **conds)` (denoised = x_t - sigma * v) against diffusers fed
`world.first_frame_concat`. Prints the largest absolute differences; exits 1 if a check fails.
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
io = torch.load(sys.argv[3], weights_only=True)
with torch.no_grad():
    out = dm(io["x"], io["t"], io["context"]).float()
diff = (out - io["out"]).abs().max().item()
scale = io["out"].abs().max().item()
print(f"max |comfy - diffusers| = {diff:.2e} (output max {scale:.2f})")
ok = diff < 1e-3 * max(scale, 1.0)
if len(sys.argv) > 4:  # the image-to-video model, through ComfyUI's conditioning path
    patcher = comfy.sd.load_diffusion_model(sys.argv[4], model_options={"dtype": torch.float32})
    model = patcher.model
    name, in_dim = type(model.model_config).__name__, model.model_config.unet_config["in_dim"]
    print("I2V detected", name, "in_dim", in_dim, "model class", type(model).__name__,
          "patch_embedding", tuple(model.diffusion_model.patch_embedding.weight.shape))
    assert name == "WAN21_T2V" and in_dim == 36, (name, in_dim)
    io = torch.load(sys.argv[5], weights_only=True)
    conds = model.extra_conds(cross_attn=io["context"], concat_latent_image=model.process_latent_out(io["image"]),
                              concat_mask=io["concat_mask"], noise=io["x"], device=torch.device("cpu"))
    conds = {k: v.process_cond(batch_size=1, area=None).cond for k, v in conds.items()}
    concat = conds["c_concat"]
    concat_diff = (concat - io["concat"]).abs().max().item()
    print("ComfyUI conds", sorted(conds), "c_concat", tuple(concat.shape),
          f"max |comfy concat - world.first_frame_concat| = {concat_diff:.2e}")
    with torch.no_grad():
        denoised = model.apply_model(io["x"], io["sigma"], **conds).float()
    diff = (denoised - io["denoised"]).abs().max().item()
    scale = io["denoised"].abs().max().item()
    print(f"I2V apply_model: max |comfy - diffusers| denoised = {diff:.2e} (max {scale:.2f})")
    ok = ok and concat_diff < 1e-4 and diff < 1e-3 * max(scale, 1.0)
sys.exit(0 if ok else 1)
"""


def _i2v_inputs(path: str, folder: str) -> tuple[str, str]:
    """Write the I2V model's ComfyUI-keyed weights and a fixed case (a world clip's frame 0 given, x_t at
    sigma 0.7, diffusers' denoised output) to `folder`; returns their two paths."""
    from fym.diffusers_host import DiffusersWan

    model = mb_model.load(path)
    state = {k: v.to(torch.float16).contiguous() for k, v in mb_model.to_comfy_state_dict(model).items()}
    weights = os.path.join(folder, "motionbench_wan_i2v_comfy.safetensors")
    save_file(state, weights)
    clip = world.random_clip(torch.Generator().manual_seed(5), "single")
    x0 = world.render(clip)[None]
    generator = torch.Generator().manual_seed(1)
    sigma = torch.tensor([0.7])
    x = sigma * torch.randn(x0.shape, generator=generator) + (1 - sigma) * x0
    condition = mb_model.i2v_condition(world.caption(clip), x0)
    with torch.no_grad():
        denoised = x - sigma * DiffusersWan(model).velocity(x, sigma, condition)
    concat = condition.per_frame["concat"]
    image = torch.zeros_like(x0)
    image[:, :, 0] = x0[:, :, 0]  # the given frame; zeros (the latent of nothing) at the other frames
    concat_mask = torch.ones(1, 1, *x0.shape[2:])
    concat_mask[:, :, 0] = 0.0  # ComfyUI's WanImageToVideo: 0 where the frame is given
    io_path = os.path.join(folder, "io_i2v.pt")
    torch.save({"x": x, "sigma": sigma, "context": condition.text, "image": image, "concat_mask": concat_mask,
                "concat": concat, "denoised": denoised}, io_path)  # fmt: skip
    return weights, io_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy-dir", required=True, help="a ComfyUI checkout")
    parser.add_argument("--comfy-python", default=sys.executable, help="a Python with ComfyUI's requirements")
    parser.add_argument("--weights", default=mb_model.WEIGHTS)
    parser.add_argument("--i2v-weights", default=mb_model.I2V_WEIGHTS, help="'' or a missing file: T2V only")
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
        command = [args.comfy_python, script, os.path.abspath(args.comfy_dir), weights, io_path]
        if args.i2v_weights and os.path.exists(args.i2v_weights):
            command += list(_i2v_inputs(args.i2v_weights, folder))
        result = subprocess.run(command)
    print("OK: ComfyUI loads the converted weights as WAN21_T2V (I2V: in_dim 36) and matches diffusers"
          if result.returncode == 0 else "FAILED")  # fmt: skip
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
