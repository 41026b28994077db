"""Render a workflow JSON in the real ComfyUI frontend and save a PNG (how docs/graph.png is made).

Needs a running ComfyUI with this pack loaded, Chromium and the Python package playwright:
    python docs/screenshot_workflow.py http://127.0.0.1:8188 workflows/01-motion-transfer-full.json docs/graph.png
"""

import json
import sys

from playwright.sync_api import sync_playwright

MARGIN = 60


def main(url: str, workflow_path: str, png_path: str) -> None:
    with open(workflow_path) as handle:
        workflow = json.load(handle)
    boxes = [(*n["pos"], n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]) for n in workflow["nodes"]]
    boxes += [tuple(g["bounding"][:2]) + (g["bounding"][0] + g["bounding"][2], g["bounding"][1] + g["bounding"][3])
              for g in workflow.get("groups", [])]  # fmt: skip
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    width, height = max(b[2] for b in boxes) - left, max(b[3] for b in boxes) - top
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(
            viewport={"width": int(width + 2 * MARGIN + 60), "height": int(height + 2 * MARGIN + 60)}
        )
        page.goto(url)
        page.wait_for_function("window.app && window.app.graph", timeout=120_000)
        page.evaluate("async (w) => { await window.app.loadGraphData(w); }", workflow)
        page.wait_for_timeout(3000)
        for _ in range(2):  # the first-run template browser and the missing-models dialog
            page.keyboard.press("Escape")
            page.wait_for_timeout(300)
        page.evaluate("() => window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false)")
        page.evaluate(
            "([x, y]) => { const c = window.app.canvas; c.ds.scale = 1; c.ds.offset = [x, y]; c.setDirty(true, true); }",
            [MARGIN - left, MARGIN - top],
        )
        page.wait_for_timeout(1000)
        page.screenshot(
            path=png_path, clip={"x": 40, "y": 40, "width": width + 2 * MARGIN, "height": height + 2 * MARGIN}
        )
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
