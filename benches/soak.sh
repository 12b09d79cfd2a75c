#!/usr/bin/env bash
# Soak benchmark of `canary serve`: accelerated schedules (one probe run per second, 4 cases
# each) against `canary sim` for MINUTES minutes, with retention shortened so that compaction
# runs during the soak. Samples the monitor's RSS and database size every 30 s and writes a
# Markdown table to OUT (default target/soak.md).
#   benches/soak.sh [MINUTES] [OUT]      (needs: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
out=${2:-target/soak.md}
bin=${CANARY_BIN:-target/release/canary}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cp golden/llama-mapper.schema.json "$work/schema.json"
head -4 golden/llama-mapper.jsonl > "$work/g.jsonl"
cat > "$work/soak.yaml" <<YAML
suite: soak
defaults: { schedule: "* * * * * *", timeout: 2s }
endpoints:
  mapper:
    protocol: http-json
    url: "\${MAPPER_URL}/map"
    schema: schema.json
    fallback: { json: "\$.provenance", equals: fallback }
probes:
  - { name: map, endpoint: mapper, golden: g.jsonl }
slos:
  - { name: latency, probe: map, sli: time_to_completion, threshold: 250ms, objective: 95%, window: 1h, per_slice: true }
  - { name: schema, probe: map, sli: schema_valid, objective: 99.5%, window: 1h }
YAML

"$bin" sim --listen 127.0.0.1:0 > "$work/sim.out" 2>/dev/null &
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
sim_url=$(awk '{print $NF}' "$work/sim.out")
MAPPER_URL=$sim_url "$bin" serve "$work/soak.yaml" --listen 127.0.0.1:0 --db "$work/soak.db" \
  --splay 0s --records-for 2m --compact-every 1m > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's#.*http://\([^ ]*\).*#\1#p' "$work/serve.out")

{
  echo "| minute | RSS (MiB) | database + WAL (KiB) | case runs so far | /api/v1/slo time (ms) |"
  echo "|---:|---:|---:|---:|---:|"
} > "$work/table.md"
samples=$((minutes * 2))
for i in $(seq 1 "$samples"); do
  sleep 30
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$serve_pid/status")
  size=$(du -k "$work"/soak.db* 2>/dev/null | awk '{s+=$1} END {print s}')
  runs=$(curl -s "http://$addr/api/v1/probes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["probes"][0]["total_runs"])')
  slo_ms=$(curl -s -o /dev/null -w '%{time_total}' "http://$addr/api/v1/slo" | awk '{printf "%.1f", $1 * 1000}')
  echo "| $(awk "BEGIN {print $i/2}") | $rss | $size | $runs | $slo_ms |" >> "$work/table.md"
done
kill -TERM "$serve_pid"; wait "$serve_pid" || true
{
  echo "# canary serve soak: one probe run per second for $minutes minutes"
  echo
  echo "Command: \`benches/soak.sh $minutes\` ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores)."
  echo "Retention shortened (--records-for 2m, --compact-every 1m) so compaction runs during the soak."
  echo
  cat "$work/table.md"
} > "$out"
cat "$out"
