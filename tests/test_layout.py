"""Static rules of the pack: layering, ComfyUI conventions and what comfy-test's SYNTAX level checks."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOST_MODULES = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}


def python_files(*folders):
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def imported_roots(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_fym_never_imports_the_host_nor_the_benchmarks():
    for path in python_files("fym"):
        bad = set(imported_roots(ast.parse(path.read_text()))) & (HOST_MODULES | {"bench", "tests"})
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_source_is_cp1252_safe_and_has_no_forbidden_calls():
    for path in python_files("fym", "nodes", "bench") + [ROOT / "__init__.py"]:
        text = path.read_text(encoding="utf-8")
        text.encode("cp1252")  # comfy-test SYNTAX rejects what Windows' default code page cannot encode
        for pattern in (r"\.cuda\(", r"\.to\([\"']cuda", r"(?<![.\w])eval\(", r"(?<![.\w])exec\("):
            assert not re.search(pattern, text), f"{path.relative_to(ROOT)} matches {pattern}"


def test_nodes_do_not_print():
    for path in python_files("nodes"):
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        assert not [c for c in calls if getattr(c.func, "id", None) == "print"], path


def node_schemas():
    """(node_id, Schema call) for every io.Schema(...) in nodes/."""
    for path in python_files("nodes"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Schema":
                kwargs = {k.arg: k.value for k in node.keywords}
                yield kwargs["node_id"].value, node


def test_node_ids_are_prefixed_unique_literals():
    ids = [node_id for node_id, _ in node_schemas()]
    assert len(ids) >= 9 and len(ids) == len(set(ids))
    assert all(isinstance(i, str) and i.startswith("FYM_") for i in ids)


def test_every_input_and_output_has_a_tooltip():
    for path in python_files("nodes"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("Input", "Output"):
                keywords = {k.arg for k in node.keywords}
                assert "tooltip" in keywords, f"{path.name}:{node.lineno} has no tooltip"


def test_every_node_has_a_help_page():
    for node_id, _ in node_schemas():
        assert (ROOT / "web" / "docs" / f"{node_id}.md").is_file(), node_id


def test_root_package_imports_without_comfyui():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fym_pack_root", ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must not raise without ComfyUI
    assert module.WEB_DIRECTORY == "./web"


def project_version(pyproject: str) -> str:
    """The [project] table's version from pyproject.toml text; a line-based read so that Python 3.10, which has
    no tomllib, runs this check too (version is a plain one-line string there)."""
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[)", pyproject + "\n[", re.MULTILINE | re.DOTALL)
    assert table, "pyproject.toml has no [project] table"
    version = re.search(r"""^version\s*=\s*["']([^"']+)["']\s*(?:#.*)?$""", table[1], re.MULTILINE)
    assert version, 'pyproject.toml\'s [project] table has no version = "..." line'
    return version[1]


def test_project_version_reader():
    text = '[tool.x]\nversion = "9"\n\n[project]\nname = "p"\nversion = "1.2.3"  # note\n\n[tool.y]\nversion = "8"\n'
    assert project_version(text) == "1.2.3"
    assert project_version("[project]\nversion = '0.4'") == "0.4"


def test_one_version():
    from fym.config import VERSION

    text = (ROOT / "pyproject.toml").read_text()
    assert project_version(text) == VERSION
    try:
        import tomllib  # Python 3.11+: cross-check the line-based read with a real TOML parser
    except ImportError:
        return
    assert tomllib.loads(text)["project"]["version"] == VERSION
