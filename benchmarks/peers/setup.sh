#!/usr/bin/env bash
# Create one virtual environment per peer for the side-by-side benchmark.
#
#   bash benchmarks/peers/setup.sh            # all peers: apax mlip mace
#   bash benchmarks/peers/setup.sh mace       # just one
#   FORCE=1 bash benchmarks/peers/setup.sh    # rebuild even if already set up
#
# Each peer gets benchmarks/peers/.venv-<peer>/ (git-ignored) holding
#   setup.log      the full pip output
#   STATUS         "ok" or "failed: <reason>" (read by benchmarks/run.py)
#   versions.txt   pip freeze of what was installed
# A peer that fails to install is recorded as failed and the script goes on
# with the others; the exit code is the number of failed peers.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(apax mlip mace)

# Exact pins, so a rerun measures the same code. jax 0.10.2 miscompiles on
# CPU, so it is excluded everywhere jax is installed.
APAX_SPEC="apax==0.14.0"
MLIP_SPEC="mlip==0.2.5"
MACE_SPEC="mace-torch==0.3.16"
# The CPU build of torch (a local wheel on our machines): installed before
# mace-torch and then held by a constraint, so no CUDA build is pulled.
TORCH_SPEC="torch==2.13.0+cpu"

install_peer() {  # $1 = peer name, $2 = venv dir, $3 = constraints file
    local peer=$1 venv=$2 cons=$3 pip="$2/bin/pip"
    "$pip" install --upgrade pip wheel || return 1
    case "$peer" in
        apax) "$pip" install -c "$cons" "$APAX_SPEC" ;;
        mlip) "$pip" install -c "$cons" "$MLIP_SPEC" ;;
        mace)
            "$pip" install "$TORCH_SPEC" || return 1
            echo "$TORCH_SPEC" >> "$cons"
            "$pip" install -c "$cons" "$MACE_SPEC" ;;
        *) echo "unknown peer $peer (choose apax, mlip, mace)"; return 1 ;;
    esac
}

smoke_test() {  # import the peer's package, to catch broken installs early
    local peer=$1 py="$2/bin/python"
    case "$peer" in
        apax) "$py" -c "import apax, jax; print('apax ok, jax', jax.__version__)" ;;
        mlip) "$py" -c "import mlip, jax, jax_md; print('mlip ok, jax', jax.__version__)" ;;
        mace) "$py" -c "import mace, torch; assert not torch.version.cuda, torch.version.cuda; print('mace ok, torch', torch.__version__)" ;;
    esac
}

failed=0
for peer in "${PEERS[@]}"; do
    venv="$HERE/.venv-$peer"
    if [ -z "${FORCE:-}" ] && [ "$(cat "$venv/STATUS" 2>/dev/null)" = "ok" ]; then
        echo "[$peer] already set up ($venv); FORCE=1 to rebuild"
        continue
    fi
    mkdir -p "$HERE/.venv-locks"; lock="$HERE/.venv-locks/$peer"  # git-ignored like the venvs
    if [ -e "$lock" ] && kill -0 "$(cat "$lock")" 2>/dev/null; then
        echo "[$peer] being set up by process $(cat "$lock"); skipped here"
        continue
    fi
    echo $$ > "$lock"
    rm -rf "$venv"
    echo "[$peer] creating $venv (log: $venv/setup.log)"
    if ! "$PYTHON" -m venv "$venv"; then
        echo "[$peer] FAILED: could not create the venv with $PYTHON"
        rm -f "$lock"; failed=$((failed + 1)); continue
    fi
    printf 'jax!=0.10.2\njaxlib!=0.10.2\n' > "$venv/constraints.txt"
    if install_peer "$peer" "$venv" "$venv/constraints.txt" > "$venv/setup.log" 2>&1 \
        && smoke_test "$peer" "$venv" >> "$venv/setup.log" 2>&1; then
        "$venv/bin/pip" freeze > "$venv/versions.txt" 2>/dev/null
        echo ok > "$venv/STATUS"
        echo "[$peer] ok: $(tail -n 1 "$venv/setup.log")"
    else
        reason=$(grep -E "ERROR|Error|error" "$venv/setup.log" | grep -v "is ignored" | tail -n 3 | tr '\n' ' ')
        echo "failed: ${reason:-see $venv/setup.log}" > "$venv/STATUS"
        echo "[$peer] FAILED: ${reason:-see $venv/setup.log}"
        failed=$((failed + 1))
    fi
    rm -f "$lock"
done
exit $failed
