"""The training feedback as a person sees it: the real ComfyUI frontend in headless Chromium.

Loads workflows/01-motion-transfer-full.json into the page, queues it from the page (shrunk to the tiny test
model by tiny_world, as test_workflows_run does), and checks that the loss chart on the temporal training node
fills in during the run and that a preview appears on it. Needs Debian's chromium (`apt install chromium`) and
`pip install playwright` in ComfyUI's environment (no browser download: the system Chromium is used).
Set FYM_SCREENSHOT=path to keep the screenshot (the README's docs/training_node.png comes from here).
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .test_pack import WORKFLOWS, tiny_world

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a sandboxed machine without a network (from the tool library's notes on headless Chromium).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
STEPS, LOG_EVERY, PREVIEW_EVERY = 40, 2, 5

# What the page shows of a node: its chart's points and step (web/js/training_chart.js) and its preview images.
NODE_STATE = """(id) => { const node = app.graph.getNodeById(id); const chart = node.fymChart?.canvas;
    return {points: Number(chart?.dataset.points ?? -1), step: Number(chart?.dataset.step ?? -1),
            previews: node.imgs?.length ?? 0}; }"""


@pytest.fixture(scope="module")
def page(comfy):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (browser test)")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt install chromium (browser test)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if "FollowYourMotion" in message.text else None)
        page.goto(comfy.url)
        page.wait_for_function("() => window.app?.graph && window.LiteGraph", timeout=120_000)
        yield page
        browser.close()
    assert not errors, errors


def test_the_loss_chart_and_previews_update_on_the_training_node_during_a_run(comfy, page, tmp_path):
    (path,) = [path for path in WORKFLOWS if path.name == "01-motion-transfer-full.json"]
    workflow = json.loads(path.read_text())
    page.evaluate("(workflow) => app.loadGraphData(workflow)", workflow)
    page.keyboard.press("Escape")  # the real model files are missing here: close the dialog that says so
    (temporal,) = [node for node in workflow["nodes"] if node["type"] == "FYM_TemporalLoRATrain"]
    assert page.evaluate(NODE_STATE, temporal["id"]) == {"points": 0, "step": 0, "previews": 0}

    # The chart is not a value: the workflow saved from the page keeps the file's widget values.
    saved = page.evaluate("() => app.graph.serialize()")
    (saved_temporal,) = [node for node in saved["nodes"] if node["id"] == temporal["id"]]
    values = temporal["widgets_values"]
    assert saved_temporal["widgets_values"][: len(values)] == values
    assert len(saved_temporal["widgets_values"]) == len(values) + 4  # expert, preview, checkpoint, resume_from

    prompt = tiny_world(page.evaluate("async () => (await app.graphToPrompt()).output"), None)
    prompt[str(temporal["id"])]["inputs"].update(steps=STEPS, log_every=LOG_EVERY, preview_every=PREVIEW_EVERY)
    prompt_id = page.evaluate(
        """async (prompt) => { const { workflow } = await app.graphToPrompt();
            return (await window.comfyAPI.api.api.queuePrompt(0, { output: prompt, workflow })).prompt_id; }""",
        prompt,
    )
    seen, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        state = page.evaluate(NODE_STATE, temporal["id"])
        if not seen or state != seen[-1]:
            seen.append(state)
        if state["step"] == STEPS:
            break
        time.sleep(0.1)
    entry = comfy.wait(prompt_id, timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]

    during = [state for state in seen if 0 < state["step"] < STEPS]
    assert len({state["points"] for state in during}) >= 2, f"the chart did not move during the run: {seen}"
    assert all(state["points"] == state["step"] for state in seen if state["step"] > 0), seen  # one point per step
    assert any(state["previews"] for state in during), f"no preview on the node during the run: {seen}"
    final = page.evaluate(NODE_STATE, temporal["id"])
    assert final["points"] == STEPS and final["previews"] >= 1, final

    page.evaluate(
        """(id) => { const canvas = app.canvas, node = app.graph.getNodeById(id);
            canvas.ds.scale = 0.9;  // both training nodes, whole
            canvas.ds.offset = [-node.pos[0] + 560, -node.pos[1] + 70];
            canvas.setDirty(true, true); }""",
        temporal["id"],
    )
    page.wait_for_timeout(500)
    screenshot = Path(os.environ.get("FYM_SCREENSHOT") or tmp_path / "training_node.png")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
