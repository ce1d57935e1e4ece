#!/usr/bin/env bash
# Runs a study plan: each line of PLAN (comments and blank lines skipped) is one call of
# tools/accuracy_study.py with those arguments. The study skips the runs its results file holds
# from this machine, so running a plan again resumes it; on another machine it runs them again.
#
#   bash tools/run_plan.sh benchmarks/search_plan.txt [extra accuracy_study.py arguments]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plan=${1:?usage: bash tools/run_plan.sh PLAN [accuracy_study.py arguments]}
shift
py=${PYTHON:-$root/.venv/bin/python}
grep -v '^\s*\(#\|$\)' "$plan" | while read -r line; do
  echo "run_plan: $(date -u +%FT%TZ) $line"
  # shellcheck disable=SC2086  # the line is a list of arguments
  "$py" "$root/tools/accuracy_study.py" $line "$@" </dev/null || echo "run_plan: failed: $line"
done
