#!/usr/bin/env bash
# Set up .venv with everything colossal_sched needs, on a fresh machine. Idempotent.
#   torch is pinned and installed FIRST (an unpinned torch would pull several GB of CUDA wheels);
#   colossalai 0.5.0 pins torch<=2.5.1, so it goes in with --no-deps plus the packages it really uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
PIP=("$VPY" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" --no-deps colossalai==0.5.0
"${PIP[@]}" numpy tqdm psutil packaging rich click contexttimer safetensors einops pydantic sentencepiece \
    galore_torch bitsandbytes accelerate "transformers==4.51.3" "peft==0.13.2" "$TORCH_SPEC"
"${PIP[@]}" -e ".[test,plot]" "$TORCH_SPEC"
"$VPY" - <<'PYEOF'
import torch, colossalai, colossal_sched
print(f"setup ok: torch {torch.__version__}, colossalai {colossalai.__version__}, colossal_sched {colossal_sched.__version__}")
PYEOF
