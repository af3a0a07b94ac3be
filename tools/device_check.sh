#!/usr/bin/env bash
# GPU checks of the project, one script, under 8 minutes on one H100/H200 (run it whole whenever a GPU is lent):
#   1. sd15-random edit, 512², NFE 200, fp16 vs the official loop   (official code: 24.2 s / 4.6 GiB; goal <= 3 s)
#   2. the denoiser call eager vs torch.compile (inductor); the whole edit with CUDA graphs (backend cudagraphs)
#   3. sd15-random inpainting, 512², NFE 200, fp16                  (official code: 39 s / 10.3 GiB; goal <= 6 s / 8 GiB)
#   4. sdxl-random and sd3-random edits at 1024², fp16 (NFE 30)
#   5. the rasterizer, strategy "dense", 256 paths at 512², forward and forward+backward, both benchmark scenes
#      (goal <= 10 ms forward+backward), after a check that a render makes no synchronising CUDA call
#   6. one whole 512² SVG step (256 paths, sd15-random, fp16) split into rasterizer / VAE encoder / UNet / step
# Each line of output that matters starts with "device_check:"; a failing check prints its error and the script
# goes on. DRY=1 runs the same commands with tiny presets on the CPU (a smoke test of this script itself).
# ROWS=<regex> runs only the rows whose label matches (e.g. ROWS='raster|svg').
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# a fresh compile cache: a run killed mid-compile leaves truncated kernels that a later compile would load
export TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)"
if [ "${DRY:-0}" = 1 ]; then
  DEV=cpu; DT=fp32; SD15=tiny; XL=tiny-xl; SD3=tiny-sd3; S512=16; S1024=16; NFE=4; NFE_XL=3; GRAPHS=default
  PATHS=16
  SLOW=3   # compiling on 2 CPU cores is slower than on the GPU machine's 16
else
  DEV=cuda; DT=fp16; SD15=sd15-random; XL=sdxl-random; SD3=sd3-random; S512=512; S1024=1024; NFE=200; NFE_XL=30
  GRAPHS=cudagraphs; SLOW=1; PATHS=256
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/device_check: gpu /'
fi
python -c "import torch, diffusers; print('device_check: torch', torch.__version__, 'diffusers', diffusers.__version__)"

run() {  # run <label> <seconds> <command...>: print the bench's result lines, or the error
  local label=$1 limit=$2; shift 2
  if [ -n "${ROWS:-}" ] && ! [[ $label =~ $ROWS ]]; then return; fi
  local t0=$SECONDS out
  out=$(timeout "$((limit * SLOW))" "$@" 2>&1); local rc=$?
  echo "$out" | grep -E "^(task=|reference|dreamsampler|ratio|denoiser call|whole edit|# device|sync check|preset=|\| )" | sed "s/^/device_check: [$label] /"
  [ $rc -ne 0 ] && { echo "$out" | tail -5 | sed "s/^/device_check: [$label] ERROR /"; echo "device_check: [$label] exit $rc"; }
  echo "device_check: [$label] took $((SECONDS - t0)) s"
}

B="python tools/bench.py --device $DEV --dtype $DT"
# the worst case is the sum of the limits: 70 + 120 + 70 + 70 + 50 + 50 + 18 + 30 s = 478 s < 8 min
run "edit sd15 512 nfe$NFE" 70 $B --backbone $SD15 --size $S512 --nfe $NFE
run "edit sd15 compile (denoiser call)" 120 $B --backbone $SD15 --size $S512 --nfe $NFE --skip-reference \
  --compile --compile-call-only
run "edit sd15 CUDA graphs" 70 $B --backbone $SD15 --size $S512 --nfe $NFE --skip-reference --compile "$GRAPHS"
run "inpaint sd15 512 nfe$NFE" 70 $B --task inpaint --backbone $SD15 --size $S512 --nfe $NFE
run "edit sdxl 1024 nfe$NFE_XL" 50 $B --backbone $XL --size $S1024 --nfe $NFE_XL --skip-reference
run "edit sd3 1024 nfe$NFE_XL" 50 $B --backbone $SD3 --size $S1024 --nfe $NFE_XL --skip-reference
run "raster dense $PATHS paths $S512 fwd+bwd" 18 python tools/bench_raster.py --device $DEV --no-diffvg \
  --strategy dense --paths $PATHS --sizes $S512 --repeats 5 --markdown --sync-check
run "svg step sd15 $S512 $PATHS paths" 30 python tools/bench_svg.py --preset $SD15 --size $S512 --paths $PATHS \
  --device $DEV --dtype $DT --repeats 2
echo "device_check: done in $SECONDS s"
