#!/usr/bin/env bash
# The landing gate's queue simulator (docs/gate.md): the strategies at p = 10 % for three
# seeds, the sweep over p, and the plot kept in docs/. Usage: scripts/bench-gate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/machine.sh
. scripts/machine.sh
machine_lines "(the simulation's time is simulated; only its own run time depends on this)"
cargo build --release --quiet --features plot
for seed in 1 2 3; do
  echo "== seed $seed"
  target/release/autoland simulate --seed "$seed"
done
echo "== sweep (seed 1)"
target/release/autoland simulate --seed 1 --sweep --plot docs/gate-simulation.png | sed -n '/^| p |/,$p'
