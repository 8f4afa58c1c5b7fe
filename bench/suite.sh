#!/bin/sh
# The whole bench, one scenario and system at a time (each run appends to bench/results/runs.jsonl).
# SECONDS_WINDOW=20 sh bench/suite.sh   for a quick pass. About 20 minutes with 60 s windows.
set -u
cd "$(dirname "$0")/.."
W=${SECONDS_WINDOW:-60}
R="python bench/run.py"
python bench/target.py --selftest --port 18099 | tee -a bench/results/target.jsonl
for s in same-100 same-1000; do
  $R $s --system gateway --workers 32 --seconds $W
  $R $s --system gateway --workers 32 --senders 2 --seconds $W
  $R $s --system apscheduler --seconds $W
  $R $s --system cron-curl --seconds $W
done
$R rate-5000 --system gateway --workers 64 --seconds $W
$R rate-5000 --system gateway --workers 64 --senders 2 --seconds $W
$R rate-5000 --system apscheduler --seconds $W
$R spread-10000 --system gateway --workers 64 --seconds $W
$R spread-10000 --system gateway --workers 64 --senders 2 --seconds $W
$R spread-10000 --system apscheduler --seconds $W
$R spread-10000 --system cron-curl --seconds $W
$R idle-100k --system gateway
$R idle-100k --system apscheduler
$R endpoint --seconds 8
