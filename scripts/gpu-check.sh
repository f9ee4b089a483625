#!/usr/bin/env bash
# One run on a GPU machine, from the bundle alone (npm run bundle; copy dist/ over), in under 10
# minutes: doctor --json, bench kernels, bench step for 1lora, lora:r=1, bitfit and full fine-tuning
# at a LLaMA-2-7B layer shape (dim 4096, ffn 11008, 32 heads, seq 512, batch 4), the 1LoRA/BitFit
# and 1LoRA/LoRA A/B pairs, and a 2-rank launch on one GPU; every figure in one JSON file.
#
#   scripts/gpu-check.sh [OUT.json]
#   ONELORA_BUNDLE=dist/onelora.mjs   the bundle to run (default: dist/onelora.mjs next to scripts/)
#   GPU_CHECK_BACKEND=webgpu          the backend every step uses (tensorflow-gpu, wasm, ...)
#   GPU_CHECK_SHAPE=7b|tiny           tiny: a seconds-long shape to check the script itself on a CPU
#   GPU_CHECK_LAYERS=1                decoder layers of the 7B-shaped model (1 or 2)
# A step that fails (out of memory, a tensor over the adapter's binding limit) is recorded with its
# error and the run goes on.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-gpu-check.json}"
bundle="${ONELORA_BUNDLE:-$here/../dist/onelora.mjs}"
backend="${GPU_CHECK_BACKEND:-webgpu}"
layers="${GPU_CHECK_LAYERS:-1}"
if [ "${GPU_CHECK_SHAPE:-7b}" = tiny ]; then
  shape=(--vocab 64 --dim 64 --ffn 172 --heads 4 --layers 1 --seq 32 --batch 2); ksize=256; reps=2
else
  shape=(--vocab 512 --dim 4096 --ffn 11008 --heads 32 --layers "$layers" --seq 512 --batch 4); ksize=4096; reps=3
fi
[ -f "$bundle" ] || { echo "gpu-check: no bundle at $bundle (npm run bundle, or set ONELORA_BUNDLE)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ONELORA_LOG="${ONELORA_LOG:-warn}"

# Runs one onelora command; its last stdout line (the --json object) or the error goes to $work/NAME.json.
step() {
  local name="$1"; shift
  local t0=$SECONDS
  if node "$bundle" "$@" --json >"$work/$name.out" 2>"$work/$name.err"; then
    tail -n 1 "$work/$name.out" >"$work/$name.json"
  else
    node -e 'const [f, code] = process.argv.slice(1); const e = require("fs").readFileSync(f, "utf8").trim().split("\n").slice(-3).join(" | "); console.log(JSON.stringify({ error: e, exit: Number(code) }))' "$work/$name.err" "$?" >"$work/$name.json"
  fi
  echo "gpu-check: $name ($((SECONDS - t0)) s)" >&2
}

step doctor doctor
step kernels bench kernels --backend "$backend" --size "$ksize" --reps "$reps"
for m in 1lora lora:r=1 bitfit all; do
  step "step-${m//[:=]/_}" bench step --backend "$backend" --method "$m" --reps "$reps" "${shape[@]}"
done
step pair-1lora-bitfit bench step --backend "$backend" --method 1lora --vs bitfit --reps "$reps" "${shape[@]}"
step pair-1lora-lora bench step --backend "$backend" --method 1lora --vs lora:r=1 --reps "$reps" "${shape[@]}"
# Two ranks on the one GPU (CUDA_VISIBLE_DEVICES unset or a single id: both workers take it).
(cd "$work" && step launch launch --workers 2 --preset demo --max-steps 2 --backend "$backend" --set eval.every=0 --set eval.max_batches=1 --set eval.generate=false --output launch)

node -e '
const fs = require("fs"); const path = require("path");
const [work, out, backend, shape] = process.argv.slice(1);
const read = (n) => JSON.parse(fs.readFileSync(path.join(work, n + ".json"), "utf8"));
const steps = {};
for (const f of fs.readdirSync(work).filter((f) => f.startsWith("step-") && f.endsWith(".json"))) steps[f.slice(5, -5)] = read(f.slice(0, -5));
const report = { created: new Date().toISOString(), backend, shape, doctor: read("doctor"), kernels: read("kernels"), steps,
  pairs: { "1lora_vs_bitfit": read("pair-1lora-bitfit"), "1lora_vs_lora_r1": read("pair-1lora-lora") }, launch: read("launch") };
fs.writeFileSync(out, JSON.stringify(report, null, 1) + "\n");
console.log(out);
' "$work" "$out" "$backend" "${GPU_CHECK_SHAPE:-7b}"
