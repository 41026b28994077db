"""Fixtures for integration tests against a real ComfyUI server.

Set COMFYUI_DIR to a ComfyUI checkout and run pytest with a Python that has
ComfyUI's requirements installed; without COMFYUI_DIR every test here skips.

The test process imports `comfy.*` from COMFYUI_DIR only to build tiny
random-weight checkpoints with ComfyUI's own classes; the code under test
runs inside the server subprocess.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .comfy_server import (
    MOTIONBENCH_I2V_UNET_NAME,
    MOTIONBENCH_UNET_NAME,
    TEST_CLIP_NAME,
    TEST_DATASET_FOLDER,
    TEST_IMAGE_NAME,
    UNET_3LAYER_NAME,
    UNET_FP8_SCALED_NAME,
    UNET_I2V_HIGH_NAME,
    UNET_I2V_LOW_NAME,
    UNET_NAME,
    UNET_T2V_LOW_NAME,
    UNET_TI2V_NAME,
    UNET_VACE_NAME,
    UNET_WAN21_I2V_NAME,
    VAE22_NAME,
    VAE_NAME,
    ComfyServer,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TEST_NODES_DIR = HERE / "fym_test_nodes"
PACK_NODE_DIR_NAME = "ComfyUI-FollowYourMotion"
TEST_NODE_DIR_NAME = "fym_test_nodes"

# Tiny Wan 2.1 T2V transformer. ComfyUI's detector derives num_heads as
# dim // 128, so dim=256 gives the 2 heads used here.
TINY_WAN21_CONFIG = dict(
    model_type="t2v",
    dim=256,
    ffn_dim=512,
    num_heads=2,
    num_layers=2,
    in_dim=16,
    out_dim=16,
    text_dim=4096,
    freq_dim=256,
    patch_size=(1, 2, 2),
    window_size=(-1, -1),
    qk_norm=True,
    cross_attn_norm=True,
    eps=1e-6,
)
# A second tiny model with another shape (3 layers), for shape-mismatch errors.
TINY_WAN21_3LAYER_CONFIG = dict(TINY_WAN21_CONFIG, num_layers=3)
# Wan 2.2 TI2V 5B's architecture (48-channel latents), tiny.
TINY_WAN22_TI2V_CONFIG = dict(TINY_WAN21_CONFIG, in_dim=48, out_dim=48)
# Wan 2.2 A14B I2V experts: the 14B layout with 36 input channels (noise, mask, first-frame image), no img_emb.
TINY_WAN22_I2V_CONFIG = dict(TINY_WAN21_CONFIG, in_dim=36)
# Wan 2.1 I2V: the same plus a CLIP-vision projection (img_emb) and image key/value in cross-attention.
TINY_WAN21_I2V_CONFIG = dict(TINY_WAN21_CONFIG, in_dim=36, model_type="i2v")
TINY_VACE_CONFIG = dict(TINY_WAN21_CONFIG, vace_layers=1, vace_in_dim=96)
# The ddconfig comfy/sd.py uses for a Wan 2.1 VAE ("decoder.middle.0.residual.0.gamma"
# present, no Wan 2.2 keys).
WAN21_VAE_CONFIG = dict(
    dim=96,
    z_dim=16,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
)


@dataclass(frozen=True)
class ComfyModels:
    """Model files and the extra_model_paths.yaml that points ComfyUI at them."""

    root: Path
    unet_path: Path
    unet_3layer_path: Path
    vae_path: Path
    loras_dir: Path
    custom_nodes_dir: Path
    extra_model_paths: Path
    motionbench_unet: Path | None  # None when bench/motionbench/motionbench_wan.safetensors was not built
    motionbench_i2v_unet: Path | None  # None when bench/motionbench/motionbench_wan_i2v.safetensors was not built


@pytest.fixture(scope="session", autouse=True)
def comfy_dir() -> Path:
    """The ComfyUI checkout from $COMFYUI_DIR, importable in this process
    (CPU only). Skips the whole session when unset."""
    value = os.environ.get("COMFYUI_DIR")
    if not value:
        pytest.skip("COMFYUI_DIR not set (path to a ComfyUI checkout); skipping ComfyUI integration tests")
    path = Path(value).resolve()
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        pytest.fail(f"COMFYUI_DIR={value} is not a ComfyUI checkout (no main.py / comfy/)")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    from comfy.cli_args import args  # parsed with [] since this is not main.py

    args.cpu = True  # must precede the first import of comfy.model_management
    return path


def _init_small_normal(module, seed: int) -> None:
    """Overwrite every parameter with seeded N(0, 0.02); norm scales get 1 + N(0, 0.02).

    Needed because comfy.ops.disable_weight_init leaves weights as torch.empty.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = 0.02 * torch.randn(param.shape, generator=generator, dtype=torch.float32)
            is_norm_scale = name.endswith("gamma") or (".norm" in name and name.endswith(".weight"))
            param.copy_(noise + 1.0 if is_norm_scale else noise)


def _build_tiny_wan21(path: Path, config: dict = TINY_WAN21_CONFIG, seed: int = 0, detected: str = "WAN21_T2V") -> None:
    import comfy.ldm.wan.model
    import comfy.ops
    import comfy.sd
    import safetensors.torch
    import torch

    kind = comfy.ldm.wan.model.VaceWanModel if "vace_layers" in config else comfy.ldm.wan.model.WanModel
    model = kind(**config, operations=comfy.ops.disable_weight_init, device="cpu", dtype=torch.float32)
    _init_small_normal(model, seed=seed)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))

    patcher = comfy.sd.load_diffusion_model(str(path))
    assert type(patcher.model.model_config).__name__ == detected
    assert patcher.model.diffusion_model.num_heads == config["num_heads"]
    assert len(patcher.model.diffusion_model.blocks) == config["num_layers"]


def _build_fp8_scaled(source: Path, path: Path) -> None:
    """`source` as the fp8_scaled checkpoints users load (wan2.1_t2v_14B_fp8_scaled): every 2-D block weight
    stored as float8_e4m3fn with a per-tensor `scale_weight` (real weight = stored * scale), and the
    `scaled_fp8` marker tensor; ComfyUI 0.3.64 reads it with scaled_fp8 ops, newer hosts convert it to their
    quantized format."""
    import safetensors.torch
    import torch

    state = safetensors.torch.load_file(str(source))
    scaled = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in state.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max().float() / 448.0
            scaled[key] = (value / scale).to(torch.float8_e4m3fn)
            scaled[key.removesuffix("weight") + "scale_weight"] = scale.reshape(())
        else:
            scaled[key] = value
    safetensors.torch.save_file(scaled, str(path))


def _convert_motionbench_wan(path: Path, i2v: bool = False) -> Path | None:
    """The pre-trained MotionBench Wan (T2V, or its I2V variant; diffusers keys) renamed to ComfyUI keys at
    `path`; None if it was never built (bench/motionbench/PRETRAIN.md)."""
    import safetensors.torch

    from bench.motionbench import model

    weights = model.I2V_WEIGHTS if i2v else model.WEIGHTS
    if not os.path.exists(weights):
        return None
    safetensors.torch.save_file(model.to_comfy_state_dict(safetensors.torch.load_file(weights)), str(path))
    return path


def _build_random_wan21_vae(path: Path) -> None:
    import comfy.ldm.wan.vae
    import comfy.sd
    import comfy.utils
    import safetensors.torch
    import torch

    model = comfy.ldm.wan.vae.WanVAE(**WAN21_VAE_CONFIG)
    _init_small_normal(model, seed=1)
    # fp16 on disk (like the released file) halves the ~500 MB of fp32 weights.
    state_dict = {k: v.to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state_dict, str(path))

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(path)))
    latent = vae.encode(torch.rand(9, 64, 64, 3, generator=torch.Generator().manual_seed(0)))
    assert tuple(latent.shape) == (1, 16, 3, 8, 8) and torch.isfinite(latent).all()
    decoded = vae.decode(latent)
    assert decoded.shape[-4:] == (9, 64, 64, 3) and torch.isfinite(decoded).all()


@pytest.fixture(scope="session")
def comfy_models(comfy_dir, tmp_path_factory) -> ComfyModels:
    """Builds the tiny Wan 2.1 T2V model (and a 3-layer variant) and a random Wan 2.1 VAE with ComfyUI's
    classes, checks ComfyUI detects/loads them, and writes extra_model_paths.yaml
    (diffusion_models, vae, loras, custom_nodes) for the server."""
    import yaml

    root = tmp_path_factory.mktemp("comfy_models")
    dirs = {name: root / name for name in ("diffusion_models", "vae", "loras", "custom_nodes")}
    for d in dirs.values():
        d.mkdir()
    (dirs["custom_nodes"] / PACK_NODE_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    (dirs["custom_nodes"] / TEST_NODE_DIR_NAME).symlink_to(TEST_NODES_DIR, target_is_directory=True)

    unet_path = dirs["diffusion_models"] / UNET_NAME
    unet_3layer_path = dirs["diffusion_models"] / UNET_3LAYER_NAME
    vae_path = dirs["vae"] / VAE_NAME
    _build_tiny_wan21(unet_path)
    _build_tiny_wan21(unet_3layer_path, TINY_WAN21_3LAYER_CONFIG, seed=2)
    _build_tiny_wan21(dirs["diffusion_models"] / UNET_TI2V_NAME, TINY_WAN22_TI2V_CONFIG, seed=3, detected="WAN22_T2V")
    _build_tiny_wan21(dirs["diffusion_models"] / UNET_I2V_HIGH_NAME, TINY_WAN22_I2V_CONFIG, seed=4)
    _build_tiny_wan21(dirs["diffusion_models"] / UNET_I2V_LOW_NAME, TINY_WAN22_I2V_CONFIG, seed=5)
    _build_tiny_wan21(dirs["diffusion_models"] / UNET_T2V_LOW_NAME, TINY_WAN21_CONFIG, seed=6)
    _build_tiny_wan21(
        dirs["diffusion_models"] / UNET_WAN21_I2V_NAME, TINY_WAN21_I2V_CONFIG, seed=7, detected="WAN21_I2V"
    )
    _build_tiny_wan21(dirs["diffusion_models"] / UNET_VACE_NAME, TINY_VACE_CONFIG, seed=8, detected="WAN21_Vace")
    _build_fp8_scaled(unet_path, dirs["diffusion_models"] / UNET_FP8_SCALED_NAME)
    _build_random_wan21_vae(vae_path)

    extra_model_paths = root / "extra_model_paths.yaml"
    config = {"fym_integration_tests": {name: str(d) for name, d in dirs.items()}}
    extra_model_paths.write_text(yaml.safe_dump(config))
    return ComfyModels(
        root=root,
        unet_path=unet_path,
        unet_3layer_path=unet_3layer_path,
        vae_path=vae_path,
        loras_dir=dirs["loras"],
        custom_nodes_dir=dirs["custom_nodes"],
        extra_model_paths=extra_model_paths,
        motionbench_unet=_convert_motionbench_wan(dirs["diffusion_models"] / MOTIONBENCH_UNET_NAME),
        motionbench_i2v_unet=_convert_motionbench_wan(dirs["diffusion_models"] / MOTIONBENCH_I2V_UNET_NAME, i2v=True),
    )


@pytest.fixture(scope="session")
def wan22_vae(comfy_models) -> Path:
    """A random Wan 2.2 VAE next to the other models (1.4 GB, about 40 s: only for tests that need it)."""
    from .wan22_vae import build_wan22_vae

    path = comfy_models.vae_path.parent / VAE22_NAME
    build_wan22_vae(path, _init_small_normal)
    return path


def _write_test_image(path: Path) -> None:
    """A 64x64 PNG (the moving square's last frame) for core LoadImage: 'your image' in I2V workflows."""
    from PIL import Image

    from .fym_test_nodes import moving_square_video

    frame = (moving_square_video(9, 64, 64, seed=1)[-1] * 255).round().byte().numpy()
    Image.fromarray(frame).save(path)


def _write_test_clip(path: Path) -> None:
    """9-frame 64x64 H.264 mp4 of the moving square, for core LoadVideo."""
    import av

    from .fym_test_nodes import moving_square_video

    frames = (moving_square_video(9, 64, 64, seed=0) * 255).round().byte().numpy()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="session")
def comfy(comfy_dir, comfy_models, tmp_path_factory):
    """One ComfyUI server for the session, loading only the FYM pack and the
    fym_test_nodes pack as custom nodes. Yields the running `ComfyServer`
    (see its input_dir / output_dir / temp_dir / log_path / url attributes);
    input_dir holds TEST_CLIP_NAME, TEST_IMAGE_NAME and TEST_DATASET_FOLDER."""
    root = tmp_path_factory.mktemp("comfy_server")
    input_dir = root / "input"
    input_dir.mkdir()
    _write_test_clip(input_dir / TEST_CLIP_NAME)
    _write_test_image(input_dir / TEST_IMAGE_NAME)
    dataset = input_dir / TEST_DATASET_FOLDER
    dataset.mkdir()
    for name in ("a", "b"):
        _write_test_clip(dataset / f"{name}.mp4")
        (dataset / f"{name}.txt").write_text(f"a square moves ({name})")
    server = ComfyServer(
        comfy_dir,
        comfy_models.extra_model_paths,
        input_dir,
        root / "output",
        root / "temp",
        custom_nodes=[PACK_NODE_DIR_NAME, TEST_NODE_DIR_NAME],
    )
    with server:
        yield server
