"""Unit check of the UI -> API converter on a small hand-written graph (no server needed)."""

from .workflow_api import ui_to_api

OBJECT_INFO = {
    "UNETLoader": {
        "input": {
            "required": {
                "unet_name": [["a.safetensors", "b.safetensors"], {}],
                "weight_dtype": [["default", "fp8_e4m3fn"], {}],
            }
        },
        "input_order": {"required": ["unet_name", "weight_dtype"]},
        "output": ["MODEL"],
    },
    "CLIPLoader": {
        "input": {
            "required": {"clip_name": [["t5.safetensors"]], "type": [["wan", "sd3"]]},
            "optional": {"device": [["default", "cpu"], {"advanced": True}]},
        },
        "input_order": {"required": ["clip_name", "type"], "optional": ["device"]},
        "output": ["CLIP"],
    },
    "CLIPTextEncode": {
        "input": {"required": {"text": ["STRING", {"multiline": True}], "clip": ["CLIP", {}]}},
        "input_order": {"required": ["text", "clip"]},
        "output": ["CONDITIONING"],
    },
    "LoadVideo": {
        "input": {"required": {"file": ["COMBO", {"options": ["clip.mp4"], "video_upload": True}]}},
        "input_order": {"required": ["file"]},
        "output": ["VIDEO"],
    },
    "ModelSamplingSD3": {
        "input": {"required": {"model": ["MODEL"], "shift": ["FLOAT", {"default": 3.0}]}},
        "input_order": {"required": ["model", "shift"]},
        "output": ["MODEL"],
    },
    "KSampler": {
        "input": {
            "required": {
                "model": ["MODEL", {}],
                "seed": ["INT", {"control_after_generate": True}],
                "steps": ["INT", {}],
                "cfg": ["FLOAT", {}],
                "sampler_name": [["euler", "uni_pc"], {}],
                "scheduler": [["simple"], {}],
                "positive": ["CONDITIONING", {}],
                "negative": ["CONDITIONING", {}],
                "latent_image": ["LATENT", {}],
                "denoise": ["FLOAT", {}],
            }
        },
        "input_order": {
            "required": [
                "model",
                "seed",
                "steps",
                "cfg",
                "sampler_name",
                "scheduler",
                "positive",
                "negative",
                "latent_image",
                "denoise",
            ]
        },
        "output": ["LATENT"],
    },
    # a V3-style node whose INT is named "seed" without control_after_generate: the frontend adds one anyway
    "Trainer": {
        "input": {
            "required": {
                "video": ["VIDEO", {}],
                "steps": ["INT", {}],
                "seed": ["INT", {}],
                "note": ["STRING", {}],
                "strength": ["FLOAT", {"forceInput": True}],
            }
        },
        "input_order": {"required": ["video", "steps", "seed", "note", "strength"]},
        "output": ["MODEL", "INT"],
    },
}


def link(link_id, src, src_slot, dst, dst_slot, kind):
    return [link_id, src, src_slot, dst, dst_slot, kind]


UI = {
    "last_node_id": 9,
    "last_link_id": 9,
    "version": 0.4,
    "extra": {},
    "config": {},
    "groups": [],
    "nodes": [
        {
            "id": 1,
            "type": "UNETLoader",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}],
            "widgets_values": ["b.safetensors", "default"],
        },
        {
            "id": 2,
            "type": "CLIPLoader",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "CLIP", "type": "CLIP", "links": [2, 3]}],
            "widgets_values": ["t5.safetensors", "wan", "cpu"],
        },
        {
            "id": 3,
            "type": "CLIPTextEncode",
            "mode": 0,
            "inputs": [{"name": "clip", "type": "CLIP", "link": 2}],
            "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4]}],
            "widgets_values": ["a cat"],
        },
        {
            "id": 4,
            "type": "CLIPTextEncode",
            "mode": 0,
            "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
            "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [5]}],
            "widgets_values": ["blurry"],
        },
        {
            "id": 5,
            "type": "LoadVideo",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "VIDEO", "type": "VIDEO", "links": [6]}],
            "widgets_values": ["clip.mp4", "image"],
        },
        # steps converted to an input fed by the trainer's INT output; seed has the auto control value
        {
            "id": 6,
            "type": "Trainer",
            "mode": 0,
            "inputs": [
                {"name": "video", "type": "VIDEO", "link": 6},
                {"name": "strength", "type": "FLOAT", "link": None},
            ],
            "outputs": [
                {"name": "MODEL", "type": "MODEL", "links": None},
                {"name": "INT", "type": "INT", "links": [7]},
            ],
            "widgets_values": [100, 5, "fixed", "hello"],
        },
        # bypassed: the KSampler gets the UNETLoader's model straight
        {
            "id": 7,
            "type": "ModelSamplingSD3",
            "mode": 4,
            "inputs": [{"name": "model", "type": "MODEL", "link": 1}],
            "outputs": [{"name": "MODEL", "type": "MODEL", "links": [8]}],
            "widgets_values": [8.0],
        },
        {
            "id": 8,
            "type": "KSampler",
            "mode": 0,
            "inputs": [
                {"name": "model", "type": "MODEL", "link": 8},
                {"name": "positive", "type": "CONDITIONING", "link": 4},
                {"name": "negative", "type": "CONDITIONING", "link": 5},
                {"name": "latent_image", "type": "LATENT", "link": None},
                {"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 7},
            ],
            "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
            "widgets_values": [42, "randomize", 30, 6.0, "uni_pc", "simple", 1.0],
        },
        {"id": 9, "type": "MarkdownNote", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["# notes"]},
    ],
    "links": [
        link(1, 1, 0, 7, 0, "MODEL"),
        link(2, 2, 0, 3, 0, "CLIP"),
        link(3, 2, 0, 4, 0, "CLIP"),
        link(4, 3, 0, 8, 1, "CONDITIONING"),
        link(5, 4, 0, 8, 2, "CONDITIONING"),
        link(6, 5, 0, 6, 0, "VIDEO"),
        link(7, 6, 1, 8, 4, "INT"),
        link(8, 7, 0, 8, 0, "MODEL"),
    ],
}


def test_ui_to_api_small_graph():
    api = ui_to_api(UI, OBJECT_INFO)
    assert set(api) == {"1", "2", "3", "4", "5", "6", "8"}  # bypassed node and note dropped
    assert api["1"]["inputs"] == {"unet_name": "b.safetensors", "weight_dtype": "default"}
    assert api["2"]["inputs"] == {"clip_name": "t5.safetensors", "type": "wan", "device": "cpu"}  # optional widget
    assert api["3"]["inputs"] == {"text": "a cat", "clip": ["2", 0]}
    assert api["5"]["inputs"] == {"file": "clip.mp4"}  # the upload button's value is not an input
    assert api["6"]["inputs"] == {"video": ["5", 0], "steps": 100, "seed": 5, "note": "hello"}
    assert api["8"]["class_type"] == "KSampler" and api["8"]["_meta"] == {"title": "KSampler"}
    assert api["8"]["inputs"] == {
        "model": ["1", 0],  # through the bypassed ModelSamplingSD3
        "seed": 42,  # "randomize" skipped
        "steps": ["6", 1],  # converted widget: the link wins over the stored 30
        "cfg": 6.0,
        "sampler_name": "uni_pc",
        "scheduler": "simple",
        "denoise": 1.0,
        "positive": ["3", 0],
        "negative": ["4", 0],
    }


def test_ui_to_api_muted_node_drops_its_links():
    ui = {**UI, "nodes": [dict(n, mode=2) if n["id"] == 4 else n for n in UI["nodes"]]}
    api = ui_to_api(ui, OBJECT_INFO)
    assert "4" not in api and "negative" not in api["8"]["inputs"]
