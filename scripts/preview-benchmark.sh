#!/usr/bin/env bash
# The Montage-AI preview benchmark (seeds/montage-ai-preview-slo.md, "Benchmark" step 3):
#   scripts/preview-benchmark.sh BASE=https://preview.example.org RUNS=10 [SEED=7] [WARMUP=1] [OUT=dir]
# Runs probes/montage-preview.yaml against BASE: WARMUP unrecorded runs, then RUNS recorded
# warm runs of every case in a seeded order, and keeps the service's /metrics before and
# after, the JSON report and the JUnit-free table in OUT. Exit code: canary's (0 SLOs met,
# 1 an SLO missed, 2 config error, 3 nothing measured).
set -euo pipefail
BASE="" RUNS=10 SEED=7 WARMUP=1 OUT=""
for arg in "$@"; do
  case "$arg" in
    BASE=*) BASE="${arg#BASE=}" ;;
    RUNS=*) RUNS="${arg#RUNS=}" ;;
    SEED=*) SEED="${arg#SEED=}" ;;
    WARMUP=*) WARMUP="${arg#WARMUP=}" ;;
    OUT=*) OUT="${arg#OUT=}" ;;
    *) echo "unknown argument: $arg (use BASE=, RUNS=, SEED=, WARMUP=, OUT=)" >&2; exit 2 ;;
  esac
done
[ -n "$BASE" ] || { echo "BASE=https://... is required" >&2; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$here/target/preview-benchmark/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
if command -v canary >/dev/null 2>&1; then
  canary=(canary)
else
  canary=(cargo run --quiet --release --manifest-path "$here/Cargo.toml" --)
fi
set +e
PREVIEW_URL="${BASE%/}" "${canary[@]}" run "$here/probes/montage-preview.yaml" \
  --runs "$RUNS" --seed "$SEED" --warmup "$WARMUP" \
  --artifacts "$OUT" --report "$OUT/report.json" | tee "$OUT/table.txt"
code=${PIPESTATUS[0]}
set -e
echo "artifacts: $OUT (report.json, table.txt, *.before.prom, *.after.prom)"
exit "$code"
