#!/usr/bin/env bash
# Live capacity on one GPU: ramp real-time calls against `callintent serve` with
# serving/configs/serve-gpu.yaml (ASR on CUDA) and report, in one run of under 8 minutes:
#   * calls held in real time (p95 client update latency < 1 s, no lag skip; bench/stream_latency.py),
#   * p95 update latency at each level,
#   * GPU memory (nvidia-smi, sampled every 0.5 s: peak in use, and the server's share above idle).
#
#   bash bench/gpu_capacity.sh [OUT_DIR]        # in the serving install (Dockerfile.gpu image or a venv)
#   LEVELS=16,32,64 MAX_CALLS=256 REGISTRY=/models/registry bash bench/gpu_capacity.sh /tmp/gpu
#
# Needs an NVIDIA GPU with CUDA 12 + cuDNN 9 libraries (ctranslate2's wheel), a registry with a
# production model, and the bench audio (AUDIO=; default ../shared/audio/OSR_us_000_0034_8k.wav).
# The bench client runs on the same machine (one asyncio process; 20 ms frames): past ~200 calls it
# can become the bottleneck itself, so read a level that misses real time with the server's p95 too.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu-capacity}
mkdir -p "$out"
levels=${LEVELS:-16,32,48,64}
max_calls=${MAX_CALLS:-256}
export CALLINTENT_SERVE_CONFIG=${CALLINTENT_SERVE_CONFIG:-$PWD/serving/configs/serve-gpu.yaml}
PY=${PYTHON:-python}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$PY" -c "import ctranslate2; print('ctranslate2', ctranslate2.__version__, 'CUDA devices', ctranslate2.get_cuda_device_count())" \
  | tee -a "$out/gpu.txt"
idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)

nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 500 > "$out/gpu_samples.csv" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

# 450 s for the server start (model load) and every level (~25 s each for 20 s calls).
args=(--calls "$levels" --find-max --max-calls "$max_calls" --seconds 20 --no-write)
[ -n "${REGISTRY:-}" ] && args+=(--registry "$REGISTRY")
[ -n "${AUDIO:-}" ] && args+=(--audio "$AUDIO")
status=0
timeout 450 "$PY" -m bench.stream_latency "${args[@]}" 2>&1 | tee "$out/levels.txt" || status=$?
kill "$sampler" 2>/dev/null || true

"$PY" - "$out" "$idle" <<'PYEOF' | tee "$out/summary.txt"
import re, sys
from pathlib import Path

out, idle = Path(sys.argv[1]), float(sys.argv[2])
samples = [line.split(",") for line in (out / "gpu_samples.csv").read_text().splitlines() if line.strip()]
used = [float(s[0]) for s in samples]
util = [float(s[1]) for s in samples]
text = (out / "levels.txt").read_text()
rows = re.findall(r"^\| (\d+) \| \d+ \| [\d.-]+ \| ([\d.-]+) \| [\d.-]+ \| ([\d.-]+) \| .* \| (yes|no) \|$", text, re.M)
for calls, client_p95, server_p95, real_time in rows:
    print(f"calls {calls}: client p95 {client_p95} ms, server p95 {server_p95} ms, real time {real_time}")
held = re.search(r"calls held .*\*\*(\d+)\*\*", text)
print(f"calls held in real time: {held.group(1) if held else 'unknown (see levels.txt)'}")
if used:
    print(f"GPU memory: idle {idle:.0f} MiB, peak {max(used):.0f} MiB (server {max(used) - idle:.0f} MiB); "
          f"GPU utilisation mean {sum(util) / len(util):.0f} %, max {max(util):.0f} %")
PYEOF
exit "$status"
