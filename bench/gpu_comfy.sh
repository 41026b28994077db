#!/bin/bash
# Prepares, in the repo root, what bench/gpu_comfy.py needs on the nvidia-h200 machine (no network there):
#   .whl/                  the wheels ComfyUI needs that the GPU image lacks (CPython 3.12, manylinux x86_64)
#   .comfy/comfyui.tar.gz  a ComfyUI snapshot from the mirror (blobs the mirror lacks are left out)
# Both are ignored locally (.git/info/exclude, never .gitignore) and travel with `run`'s carry [".whl", ".comfy"].
# Usage: bash bench/gpu_comfy.sh [COMFY_GITDIR]    (default /work/.mirror/yzkee+ComfyUI/repo)
# Skip the download (e.g. to rebuild only the snapshot): NO_WHEELS=1 bash bench/gpu_comfy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
gitdir=${1:-/work/.mirror/yzkee+ComfyUI/repo}
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for path in /.whl/ /.comfy/; do grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >>"$exclude"; done

# One version of each (the ones ComfyUI 0.33 pins or was tested with here); --no-deps, so every need is named.
wheels=(  # what an in-process run imports (checked with ComfyUI 0.33's sys.modules) that the image lacks
  comfy-kitchen==0.2.31 comfy-aimdo==0.4.13 torchsde==0.2.6 trampoline==0.1.2 blake3==1.0.11
  alembic==1.20.1 mako==1.4.3 sqlalchemy==2.1.9 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5
)
if [ -z "${NO_WHEELS:-}" ]; then
  mkdir -p .whl
  for wheel in "${wheels[@]}"; do
    name=${wheel%%==*}
    ls .whl/ 2>/dev/null | grep -qi "^${name//-/_}-" && continue  # have it already
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
      --platform any -d .whl "$wheel"
  done
fi

# comfy-kitchen without its compiled CUDA and HIP backends (176 + 59 MB of .so, 58 MB zipped): with the tracked
# tree (29 MB) they would break run's 64 MiB. ComfyUI then uses comfy-kitchen's eager (PyTorch) backend.
# PyAV (36 MB) stays behind too: bench/gpu_comfy.py puts a stand-in in its place (nothing here decodes video).
python3 - <<'PY'
import glob, zipfile
for path in glob.glob(".whl/comfy_kitchen-*.whl"):
    with zipfile.ZipFile(path) as source:
        infos = source.infolist()
        items = [(i, source.read(i)) for i in infos if not (i.filename.endswith(".so") and "/backends/" in i.filename)]
    if len(items) == len(infos):
        continue
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in items:
            if info.filename.endswith("RECORD"):
                data = b"".join(l for l in data.splitlines(True) if not (b"/backends/" in l and b".so," in l))
            target.writestr(info, data)
    print("slimmed", path)
PY

# ComfyUI snapshot of the mirror's HEAD, without the blobs the (partial) mirror lacks: a temporary index
# (git archive reads every blob, excluded or not), checked out to a temporary folder, tarred.
mkdir -p .comfy
work=$(mktemp -d)
export GIT_INDEX_FILE=$work/index
git --git-dir="$gitdir" read-tree HEAD
git --git-dir="$gitdir" ls-files -s | awk '{print $2" "$4}' >"$work/tree"
cut -d' ' -f1 "$work/tree" | git --git-dir="$gitdir" cat-file --batch-check | awk '$2=="missing"{print $1}' >"$work/missing"
grep -F -f "$work/missing" "$work/tree" | cut -d' ' -f2- >"$work/skip" || true
sed 's/^/snapshot skips (blob not in the mirror): /' "$work/skip"
git -C "$work" --git-dir="$gitdir" --work-tree="$work" update-index --force-remove --stdin <"$work/skip"
mkdir -p "$work/ComfyUI" && git -C "$work/ComfyUI" --git-dir="$gitdir" --work-tree="$work/ComfyUI" checkout-index -a
unset GIT_INDEX_FILE
tar -czf .comfy/comfyui.tar.gz -C "$work/ComfyUI" .
rm -rf "$work"
git --git-dir="$gitdir" rev-parse HEAD >.comfy/commit
du -sh .whl .comfy 2>/dev/null || true
echo "carried size (tracked + .whl + .comfy) must stay under 64 MiB:"
du -cb $(git ls-files) .whl .comfy 2>/dev/null | tail -1
