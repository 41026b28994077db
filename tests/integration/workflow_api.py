"""UI-format workflow (what the frontend saves, version 0.4) -> API-format prompt (what POST /prompt runs).

For tests only: it follows the frontend's serialisation rules closely enough for the workflows this pack
ships, and fails loudly on what it does not handle (frontend-only nodes other than notes, subgraphs).

Rules, as ComfyUI's frontend applies them:
- widgets_values are positional, in the order /object_info lists the node's inputs (required, then
  optional), counting only widget inputs (INT, FLOAT, STRING, BOOLEAN, COMBO without forceInput);
- an INT with control_after_generate, or an INT named "seed" / "noise_seed" (the frontend adds the control
  to those by convention), is followed by the control's value ("fixed", "randomize", ...), which is not an
  input; a combo with an upload button (image_upload, video_upload, ...) is followed by the button's value;
- a widget the user converted to an input socket keeps its slot in widgets_values, but the API input is
  the link;
- links become [source node id (string), output slot]; muted nodes (mode 2) are dropped, bypassed nodes
  (mode 4) pass their first input of a matching type through, and note nodes are ignored.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # newer ComfyUI: a combo whose option brings its own widgets (SaveVideo)
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload")
NOTE_TYPES = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


def input_kind(spec) -> str:
    """'COMBO', 'INT', ... for a widget input spec from /object_info, else 'SOCKET'."""
    kind = "COMBO" if isinstance(spec[0], list) else spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if (kind in WIDGET_TYPES or kind == DYNAMIC_COMBO) and not options.get("forceInput"):
        return kind
    return "SOCKET"


def widget_inputs(node_info: dict) -> list[tuple[str, str, dict]]:
    """(name, kind, options) of every widget input of a node, in widgets_values order."""
    order = node_info.get("input_order") or {
        section: list(node_info["input"].get(section, {})) for section in ("required", "optional")
    }
    result = []
    for section in ("required", "optional"):
        specs = node_info["input"].get(section, {})
        for name in order.get(section, []):
            spec = specs[name]
            kind = input_kind(spec)
            if kind != "SOCKET":
                result.append((name, kind, spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}))
    return result


def has_control(name: str, kind: str, options: dict) -> bool:
    """Whether the frontend adds a control_after_generate widget right after this one."""
    if options.get("control_after_generate") is not None:
        return bool(options["control_after_generate"])
    return kind == "INT" and name in ("seed", "noise_seed")


def widget_values(node: dict, node_info: dict) -> dict:
    """Input name -> value for every widget of a UI node (linked widgets included; the caller overrides)."""
    values = node.get("widgets_values") or []
    specs = widget_inputs(node_info)
    if isinstance(values, dict):  # some packs serialise widgets by name
        return {name: values[name] for name, _, _ in specs if name in values}
    result, index = {}, 0
    for name, kind, options in specs:
        if index >= len(values):
            break
        result[name] = values[index]
        index += 1
        if kind == DYNAMIC_COMBO:  # the chosen option's widgets follow, named "combo.widget" in the API
            (chosen,) = [option for option in options["options"] if option["key"] == result[name]]
            nested = {"input": chosen["inputs"], "input_order": {}}
            for child, value in widget_values({"widgets_values": values[index:]}, nested).items():
                result[f"{name}.{child}"] = value
                index += 1
        upload = kind == "COMBO" and any(options.get(key) for key in UPLOAD_OPTIONS)
        if index < len(values):
            if has_control(name, kind, options) and values[index] in CONTROL_VALUES:
                index += 1
            elif upload and values[index] == "image":  # the upload button's value, whatever the media
                index += 1
    return result


def ui_to_api(ui_graph: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to an API-format prompt, with node ids as strings."""
    if ui_graph.get("definitions", {}).get("subgraphs"):
        raise NotImplementedError("subgraphs are not supported")
    nodes = {node["id"]: node for node in ui_graph["nodes"]}
    links = {}
    for link in ui_graph.get("links", []):
        if isinstance(link, dict):  # version 1.0 style
            link = [
                link["id"],
                link["origin_id"],
                link["origin_slot"],
                link["target_id"],
                link["target_slot"],
                link["type"],
            ]
        links[link[0]] = link

    def source(link_id):
        """[node id, slot] feeding a link, following bypassed nodes; None if it comes from a muted node."""
        seen = set()
        while link_id is not None:
            _, from_node, from_slot, _, _, link_type = links[link_id]
            node = nodes[from_node]
            mode = node.get("mode", 0)
            if mode == MUTED:
                return None
            if mode != BYPASSED:
                return [str(from_node), from_slot]
            if from_node in seen:
                raise ValueError(f"bypass loop at node {from_node}")
            seen.add(from_node)
            wanted = node["outputs"][from_slot]["type"]
            link_id = next(
                (i.get("link") for i in node.get("inputs", []) if i.get("link") is not None and i["type"] == wanted),
                None,
            )
        return None

    prompt = {}
    for node_id, node in nodes.items():
        node_type = node["type"]
        if node_type in NOTE_TYPES or node.get("mode", 0) in (MUTED, BYPASSED):
            continue
        if node_type not in object_info:
            raise KeyError(f"node {node_id}: {node_type!r} is not in /object_info (missing pack or frontend-only node)")
        inputs = widget_values(node, object_info[node_type])
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            fed_by = source(slot["link"])
            name = slot.get("widget", {}).get("name", slot["name"])  # a converted widget keeps its name
            if fed_by is None:
                inputs.pop(name, None)
            else:
                inputs[name] = fed_by
        prompt[str(node_id)] = {
            "class_type": node_type,
            "inputs": inputs,
            "_meta": {"title": node.get("title", node_type)},
        }
    return prompt
