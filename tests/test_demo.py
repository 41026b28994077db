import json

from fym import lora
from fym.demo import main


def test_demo_writes_every_artifact(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--spatial-steps", "20", "--temporal-steps", "20"]) == 0
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
    assert report["stages"]["spatial"]["heads"] + report["stages"]["temporal"]["heads"] == 16
    assert set(report["motion_fidelity"]) == {"with_lora", "without_lora"}
    assert all(-1.0 <= f <= 1.0 for f in report["motion_fidelity"].values())
    temporal = lora.load(str(out / "temporal_lora.safetensors"))
    assert temporal.metadata["stage"] == "temporal" and temporal.metadata["steps"] == 20
    assert main(["demo", "--out", str(out), "--spatial-steps", "2", "--temporal-steps", "2"]) == 0  # reruns in place
