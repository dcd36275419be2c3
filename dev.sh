#!/usr/bin/env bash
# femion developer entry point: sets itself up on a fresh machine, then runs.
#
#   ./dev.sh run [CASE] [femion run options]   set up, run a case (default: the paper's Model III) on
#                                              ${FEMION_NP:-2} MPI ranks, write results/<case>/ with figures
#   ./dev.sh test [pytest options]             set up, lint + types + import contracts, then the test suite
#                                              (serial, then the MPI tests on 2 ranks)
#   ./dev.sh setup                             only create .venv and install femion[dolfinx,test]
#
# Python >= 3.12 is needed for the dolfinx-solver-real wheel: $FEMION_PYTHON if set, else the first
# python3.13/python3.12 found on PATH or under ~/.pyenv/versions. To use an existing DOLFINx
# (conda-forge, FEniCS container) instead, see README.md: pip install . in that environment.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${FEMION_VENV:-.venv}

find_python() {
    local c
    for c in "${FEMION_PYTHON:-}" python3.14 python3.13 python3.12 \
             "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /root/.pyenv/versions/3.1[2-9]*/bin/python3 python3; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            echo "$c"; return 0
        fi
    done
    return 1
}

setup() {
    local stamp="$VENV/.femion-installed" want
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/femion" ]; then
        return 0
    fi
    local py
    py=$(find_python) || { echo "dev.sh: no Python >= 3.12 found; set FEMION_PYTHON=/path/to/python3.12" >&2; exit 2; }
    echo "dev.sh: setting up $VENV with $py ($("$py" --version 2>&1))" >&2
    [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e ".[dolfinx,test]" >&2
    echo "$want" > "$stamp"
}

cmd=${1:-run}; shift || true
case "$cmd" in
    setup) setup ;;
    run)
        setup
        case_file=${1:-cases/fig4_model_III.yaml}; shift || true
        name=$(basename "$case_file" .yaml)
        "$VENV/bin/mpiexec" -n "${FEMION_NP:-2}" "$VENV/bin/femion" run "$case_file" --out "results/$name" "$@"
        echo "figures:"; ls -1 "results/$name/figures/"*.png
        ;;
    test)
        setup
        # Fail fast: lint (ruff), the types of the pure modules (mypy) and the import contracts
        # (import-linter), all configured in pyproject.toml; then the serial suite, then every
        # MPI-sensitive test again on 2 ranks. Arguments go to pytest (e.g. -m unit, -m "not slow").
        echo "dev.sh: ruff check" >&2
        "$VENV/bin/ruff" check --quiet .
        echo "dev.sh: mypy (pure modules)" >&2
        "$VENV/bin/mypy" --no-error-summary
        echo "dev.sh: import contracts" >&2
        "$VENV/bin/lint-imports" --no-cache
        "$VENV/bin/python" -m pytest -q "$@"
        "$VENV/bin/mpiexec" -n 2 "$VENV/bin/python" -m pytest -q -m mpi -p no:cacheprovider "$@"
        ;;
    *) echo "usage: ./dev.sh run [CASE] | test | setup" >&2; exit 2 ;;
esac
