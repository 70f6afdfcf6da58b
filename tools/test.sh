#!/usr/bin/env bash
# The test command: each package's tests run in an environment that holds only that
# package's declared dependencies (plus the dev group), so an undeclared import fails.
# Usage: tools/test.sh [PACKAGE ...] [-- PYTEST_ARGS...]
set -uo pipefail
cd "$(dirname "$0")/.."
# Let Python cache compiled bytecode: without it every process recompiles torch and sdv on import.
unset PYTHONDONTWRITEBYTECODE

packages=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do packages+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
if [ ${#packages[@]} -eq 0 ]; then
  for dir in packages/*/; do packages+=("$(basename "$dir")"); done
fi

failed=()
for name in "${packages[@]}"; do
  env=".venvs/$name"
  echo "== privaudit-$name: syncing $env"
  if ! UV_PROJECT_ENVIRONMENT="$env" uv sync --quiet --locked --package "privaudit-$name" --all-extras --group dev; then
    failed+=("$name (sync)"); continue
  fi
  echo "== privaudit-$name: tests"
  "$env/bin/python" -m pytest "packages/$name/tests" "$@"
  rc=$?
  # pytest exits 5 when a package has no tests yet: not a failure of that package.
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then failed+=("$name"); fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED packages: ${failed[*]}"
  exit 1
fi
echo "all package test suites passed"
