import os
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from fym import lora
from fym.config import SPATIAL
from fym.heads import HeadMap
from fym.host import PROJECTIONS, WanShape
from fym.train import train_stage


def head_map_for(shape, temporal):
    """A HeadMap where the (layer, head) pairs in `temporal` are temporal and all others spatial."""
    s = [[1.0 if (i, h) not in temporal else 0.0 for h in range(shape.num_heads)] for i in range(shape.num_layers)]
    t = [[0.5] * shape.num_heads for _ in range(shape.num_layers)]
    return HeadMap(shape, s, t, 1.3, [0.5], 1, 64)


def output_deltas(host, inputs):
    """What the attached adapters add to each self-attention linear's output for `inputs[(layer, proj)]`."""
    deltas = {}
    with torch.no_grad():
        for (layer, projection), x in inputs.items():
            linear = host.linear(layer, projection)
            hooked = linear(x)
            deltas[(layer, projection)] = hooked - torch.nn.functional.linear(x, linear.weight, linear.bias)
    return deltas


def random_inputs(host, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dim = host.shape.dim
    return {(i, p): torch.randn(5, dim, generator=generator) for i in range(host.shape.num_layers) for p in PROJECTIONS}


def trained_spatial(host, clip, context, head_map, **config):
    frames = clip[0].transpose(0, 1).unsqueeze(2)
    config = replace(SPATIAL, **{"steps": 3, "rank": 4, "alpha": 4.0, "learning_rate": 1e-2, **config})
    return train_stage(host, "spatial", frames, context, head_map, config, keep_attached=True)


def test_training_changes_only_the_selected_heads(host, clip, context):
    head_map = head_map_for(
        host.shape, temporal={(0, 1), (1, 0), (1, 3)}
    )  # spatial: layer 0 heads 0,2,3; layer 1 heads 1,2
    weights = {name: p.clone() for name, p in host.model.named_parameters()}
    result = trained_spatial(host, clip, context, head_map)
    d = host.shape.head_dim
    for (layer, projection), _ in random_inputs(host).items():
        delta = lora.merged_delta(result.lora, layer, projection)
        spatial = head_map.heads("spatial")[layer]
        for head in range(host.shape.num_heads):
            block = delta[head * d : (head + 1) * d] if projection != "o" else delta[:, head * d : (head + 1) * d]
            if head in spatial:
                assert block.abs().max() > 0, (layer, projection, head)
            else:
                assert torch.equal(block, torch.zeros_like(block)), (layer, projection, head)
    # the model's own weights are never modified; detaching removes every trace
    assert all(torch.equal(p, weights[name]) for name, p in host.model.named_parameters())
    host.detach("fym_spatial")
    assert all(delta.abs().max() == 0 for delta in output_deltas(host, random_inputs(host)).values())


def test_export_matches_the_trained_delta(host, clip, context):
    head_map = head_map_for(host.shape, temporal={(0, 0)})
    result = trained_spatial(host, clip, context, head_map, steps=2)
    inputs = random_inputs(host)
    for (layer, projection), live in output_deltas(host, inputs).items():
        exported = inputs[(layer, projection)] @ lora.merged_delta(result.lora, layer, projection).t()
        assert exported.abs().max() > 0
        torch.testing.assert_close(exported, live, atol=1e-5, rtol=1e-4)
    host.detach("fym_spatial")


def test_adapter_works_on_any_input_dtype():
    """The update is computed in the linear's compute dtype and is the same delta (bf16 within its precision)."""
    adapter = lora.HeadLoRA((16, 16), [1], 8, axis=0, rank=2, alpha=2.0)
    torch.nn.init.normal_(adapter.lora_up)
    x = torch.randn(3, 16)
    expected = x @ lora.merged_delta(lora.export({(0, "q"): adapter}, WanShape(1, 2, 8)), 0, "q").t()
    for dtype in (torch.float32, torch.bfloat16):
        out = adapter(x.to(dtype), torch.zeros(3, 16, dtype=dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), expected, atol=0.05 if dtype == torch.bfloat16 else 1e-5, rtol=0.02)


def test_comfyui_key_format():
    shape = WanShape(2, 2, 8)
    adapters = lora.make_adapters(shape, {1: [0]}, rank=3, alpha=6.0)
    exported = lora.export(adapters, shape, stage="temporal")
    keys = set(exported.state_dict)
    for projection in PROJECTIONS:
        prefix = f"diffusion_model.blocks.1.self_attn.{projection}"
        assert {f"{prefix}.lora_up.weight", f"{prefix}.lora_down.weight", f"{prefix}.alpha"} <= keys
        assert exported.state_dict[f"{prefix}.lora_up.weight"].shape == (16, 3)
        assert exported.state_dict[f"{prefix}.lora_down.weight"].shape == (3, 16)
        assert float(exported.state_dict[f"{prefix}.alpha"]) == 6.0
    assert not any(".blocks.0." in key for key in keys)
    assert len(keys) == 12


def test_save_load_round_trip_never_overwrites(tmp_path):
    shape = WanShape(2, 4, 32)
    adapters = lora.make_adapters(shape, {0: [1], 1: [0, 2]}, rank=8, alpha=8.0)
    for adapter in adapters.values():
        torch.nn.init.normal_(adapter.lora_up)
    exported = lora.export(adapters, shape, stage="spatial", steps=7)
    path, full = str(tmp_path / "motion.safetensors"), str(tmp_path / "motion_fp32.safetensors")
    lora.save(exported, path)  # bf16 by default
    lora.save(exported, full, dtype="fp32")
    loaded, loaded_full = lora.load(path), lora.load(full)
    assert loaded.metadata == {**exported.metadata, "file_dtype": "bf16"} and loaded.shape == shape
    assert loaded_full.metadata["file_dtype"] == "fp32"
    assert loaded.metadata["version"] and loaded.metadata["stage"] == "spatial"
    for key, value in exported.state_dict.items():
        assert torch.equal(loaded_full.state_dict[key], value)
        assert loaded.state_dict[key].dtype == (torch.float32 if key.endswith(".alpha") else torch.bfloat16)
        assert torch.allclose(loaded.state_dict[key].float(), value, rtol=2**-8, atol=0), key
    assert os.path.getsize(path) < 0.55 * os.path.getsize(full)  # half the bytes, plus the metadata
    with pytest.raises(FileExistsError):
        lora.save(exported, path)
    with pytest.raises(ValueError, match="bf16, fp32"):
        lora.save(exported, str(tmp_path / "other.safetensors"), dtype="fp16")
    assert sorted(os.listdir(tmp_path)) == ["motion.safetensors", "motion_fp32.safetensors"]  # no temporary files


def test_loading_a_file_that_is_not_a_motion_lora_fails_clearly(tmp_path):
    path = str(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a Follow-Your-Motion motion LoRA"):
        lora.load(path)


def test_shape_mismatch_is_reported():
    exported = lora.export(lora.make_adapters(WanShape(1, 2, 8), {0: [0]}, 2, 2.0), WanShape(1, 2, 8))
    with pytest.raises(ValueError, match="trained on a Wan model with 1 layers x 2 heads"):
        exported.check_shape(WanShape(30, 12, 128), "Apply Motion LoRA")


def test_a_truncated_file_names_itself_and_the_fix(tmp_path):
    exported = lora.export(lora.make_adapters(WanShape(1, 2, 8), {0: [0]}, 2, 2.0), WanShape(1, 2, 8), stage="temporal")
    path = tmp_path / "motion.safetensors"
    lora.save(exported, str(path))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut\.safetensors is not a readable \.safetensors file .*truncated"):
        lora.load(str(truncated))
