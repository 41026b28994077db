import json
import math

import torch
from PIL import Image

from bench.demo import main
from bench.motionbench import metrics, world
from fym import lora
from fym.heads import HeadMap

CLIP = "nonrigid-circle-crawl"  # the demo's default reference
SCALE = 6  # motion.png's pixels per latent patch


def strip_row(video: torch.Tensor) -> torch.Tensor:
    """One row of motion.png: the latent video (16, T, H, W) as its frames side by side, scaled: (h, w, 3) uint8."""
    row = torch.cat(list(metrics.to_rgb(video)), dim=1)
    return row.repeat_interleave(SCALE, 0).repeat_interleave(SCALE, 1)


def read_png(path) -> torch.Tensor:
    image = Image.open(path).convert("RGB")
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3)


def test_demo_writes_every_artifact(tmp_path):
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--spatial-steps", "20", "--temporal-steps", "20"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "head_map.json",
        "head_map.png",
        "spatial_lora.safetensors",
        "temporal_lora.safetensors",
        "spatial_loss.png",
        "temporal_loss.png",
        "report.md",
        "report.json",
        "motion.png",
    } <= names
    report = json.loads((out / "report.json").read_text())

    # Each stage trained the saved head map's heads of its kind, and both kinds have some.
    head_map = HeadMap.from_json((out / "head_map.json").read_text())
    for stage in ("spatial", "temporal"):
        facts = report["stages"][stage]
        assert facts["heads"] == head_map.count(stage) > 0
        assert facts["steps"] == 20 and math.isfinite(facts["first_loss"]) and math.isfinite(facts["last_loss"])
        saved = lora.load(str(out / facts["file"]))
        assert saved.metadata["stage"] == stage and saved.metadata["steps"] == 20
        assert saved.metadata["heads"] == {str(layer): heads for layer, heads in head_map.heads(stage).items()}

    # motion.png rows: the reference, the ideal transfer, the sample with the temporal LoRA, the one without.
    _, clip, targets = next(e for e in world.reference_clips() if e[0] == CLIP)
    picture = read_png(out / "motion.png")
    reference = strip_row(world.render(clip))
    height = reference.shape[0]
    assert picture.shape == (4 * height, reference.shape[1], 3)
    rows = [picture[i * height : (i + 1) * height] for i in range(4)]
    assert torch.equal(rows[0], reference)
    assert torch.equal(rows[1], strip_row(world.render(clip.with_appearances(targets))))
    assert not torch.equal(rows[2], rows[3])  # the temporal LoRA changed the sample drawn from the same noise

    fidelity = report["motion_fidelity"]
    assert set(fidelity) == {"with_lora", "without_lora"} and all(math.isfinite(f) for f in fidelity.values())
    text = (out / "report.md").read_text()
    assert f"{fidelity['with_lora']} with the temporal LoRA" in text and f"{fidelity['without_lora']} without" in text

    assert main(["--out", str(out), "--spatial-steps", "2", "--temporal-steps", "2"]) == 0  # reruns in place
    assert json.loads((out / "report.json").read_text())["stages"]["temporal"]["steps"] == 2
    assert lora.load(str(out / "temporal_lora.safetensors")).metadata["steps"] == 2
