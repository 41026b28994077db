"""A random-weight Wan 2.2 VAE (48-channel latents, 16x spatial / 4x temporal compression; the VAE of
Wan 2.2 TI2V 5B, comfy/ldm/wan/vae2_2.py) built with ComfyUI's own class.

It cannot be made tiny: comfy/sd.py `VAE.__init__` (0.3.64 and 0.33.0 alike) picks the Wan 2.2 VAE when the
state dict has "decoder.middle.0.residual.0.gamma" and "decoder.upsamples.0.upsamples.0.residual.2.weight",
then builds it from a hard-coded ddconfig (dim 160, z_dim 48, ...) and reads no size from the weights, so a
smaller file would load with shape mismatches. The file therefore has the released architecture (~705M
parameters), stored in fp16 like the released wan2.2_vae.safetensors: about 1.4 GB on disk.
"""

from collections.abc import Callable
from pathlib import Path

# The ddconfig comfy/sd.py hard-codes for the Wan 2.2 VAE (dec_dim is left at WanVAE's default, 256).
WAN22_VAE_CONFIG = dict(
    dim=160,
    z_dim=48,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
)


def build_wan22_vae(path: Path, init_weights: Callable[..., None], seed: int = 4) -> None:
    """Write a random Wan 2.2 VAE to `path` (safetensors, fp16) and check ComfyUI loads it as one that
    encodes 9 frames of 64x64 to a (1, 48, 3, 4, 4) latent and decodes that back to 9 frames of 64x64.

    `init_weights(module, seed=...)` fills the parameters (conftest's `_init_small_normal`); ComfyUI's
    disable_weight_init ops leave them as torch.empty. Needs ComfyUI importable with args.cpu set."""
    import comfy.ldm.wan.vae2_2
    import comfy.sd
    import comfy.utils
    import safetensors.torch
    import torch

    model = comfy.ldm.wan.vae2_2.WanVAE(**WAN22_VAE_CONFIG)
    init_weights(model, seed=seed)
    model.to(torch.float16)  # in place, so the 2.8 GB of fp32 weights are not held next to an fp16 copy
    state_dict = {k: v.contiguous() for k, v in model.state_dict().items()}
    del model
    safetensors.torch.save_file(state_dict, str(path))

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(path)))
    assert isinstance(vae.first_stage_model, comfy.ldm.wan.vae2_2.WanVAE) and vae.latent_channels == 48
    assert set(vae.first_stage_model.state_dict()) == set(state_dict)  # nothing left as torch.empty
    latent = vae.encode(torch.rand(9, 64, 64, 3, generator=torch.Generator().manual_seed(0)))
    assert tuple(latent.shape) == (1, 48, 3, 4, 4) and torch.isfinite(latent).all()
    decoded = vae.decode(latent)
    assert decoded.shape[-4:] == (9, 64, 64, 3) and torch.isfinite(decoded).all()
