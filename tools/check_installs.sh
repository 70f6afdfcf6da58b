#!/usr/bin/env bash
# Installs each package alone from built wheels into a fresh venv outside the workspace (where
# uv's workspace settings do not apply), checks what it pulled in, runs its CLI's --help and a
# tiny end-to-end run from a scratch folder, and prints its package count and venv size.
# Usage: tools/check_installs.sh [PACKAGE ...]   (default: every package)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(core dp attacks tabular image text)

uv build --quiet --all-packages --wheel --out-dir "$work/dist" --project "$root"
# the locked versions of third-party packages, so the venvs install what the uv cache holds
uv export --quiet --frozen --all-packages --all-extras --no-emit-workspace --no-hashes \
  --project "$root" -o "$work/constraints.txt"

# packages a modality must not pull in (the heavy stacks of the other modalities)
declare -A forbidden=(
  [core]="torch torchvision transformers sdv"
  [dp]="torchvision transformers sdv pandas matplotlib mlxtend"
  [attacks]="torchvision transformers sdv"
  [tabular]="torchvision transformers spacy gensim opencv-python sentence-transformers pytorch-widedeep"
  [image]="transformers sdv spacy gensim"
  [text]="torchvision sdv spacy gensim"
)

tiny_run() {  # one small end-to-end run per package, in the scratch folder
  case "$1" in
    core) privaudit demo --out demo ;;
    dp) python - <<'EOF'
import torch
from privaudit.dp import make_private
from torch.utils.data import DataLoader, TensorDataset
model = torch.nn.Linear(4, 2)
data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
model, opt, loader, accountant = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data,
                                              noise_multiplier=1.0)
for x, y in loader:
    if len(x):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step(); opt.zero_grad()
print(f"one private epoch, epsilon {accountant.get_epsilon(1e-5):.2f}")
EOF
      ;;
    attacks) audit-attacks mia --quiet --out mia --set data.dataset=digits --set data.audit_size=100 \
               --set data.population_size=50 --set model.kind=mlp --set references.count=4 --set training.epochs=2 ;;
    tabular) audit-tabular --out tabular --set generator_rows=200 --set audit_members=300 --set non_members=200 \
               --set ctgan_epochs=2 --set epochs=2 --set helper_epochs=2 --set classifier_iterations=10 ;;
    image) audit-image --data digits --out image --set generator_images=300 --set audit_members=300 \
             --set non_members=200 --set gan_steps=5 --set epochs=1 --set helper_images=100 --set helper_epochs=1 \
             --set attack_epochs=1 --set gan_threads=1 ;;
    text) dp-train --model gpt2 --out gpt2 --limit 40 --block 16 --vocab 300 --layers 1 --width 16 --epochs 1
          audit-text --out text --epochs 1 --set pretrain_texts=200 --set generator_examples=40 \
            --set audit_members=40 --set non_members=40 --set pretrain_epochs=1 --set generator_epochs=1 \
            --set helper_epochs=1 --set feature_epochs=2 --set joint_epochs=1 --set block=24 --set vocab=300 \
            --set layers=1 --set width=16 ;;
  esac
}

cli_of() {
  case "$1" in core) echo privaudit ;; dp) echo dp-train ;; attacks) echo audit-attacks ;;
    tabular) echo audit-tabular ;; image) echo audit-image ;; text) echo audit-text ;; esac
}

failed=()
for name in "${packages[@]}"; do
  venv="$work/venv-$name"
  echo "== privaudit-$name: fresh venv from wheels"
  uv venv --quiet --python 3.11 "$venv"
  VIRTUAL_ENV="$venv" uv pip install --quiet --find-links "$work/dist" -c "$work/constraints.txt" "privaudit-$name"
  installed="$(VIRTUAL_ENV="$venv" uv pip list --quiet --format freeze | tr 'A-Z_' 'a-z-')"
  for bad in ${forbidden[$name]}; do
    if grep -q "^$bad==" <<<"$installed"; then
      echo "privaudit-$name pulled in $bad"; failed+=("$name ($bad)")
    fi
  done
  numpy_major="$(grep '^numpy==' <<<"$installed" | cut -d= -f3 | cut -d. -f1)"
  [ "$numpy_major" = "2" ] || { echo "privaudit-$name has numpy $numpy_major, not 2"; failed+=("$name (numpy)"); }
  mkdir -p "$work/run-$name"
  if ! (cd "$work/run-$name" && export PATH="$venv/bin:$PATH" && "$(cli_of "$name")" --help >/dev/null \
        && tiny_run "$name" >"$work/run-$name.log" 2>&1); then
    tail -20 "$work/run-$name.log" 2>/dev/null || true
    failed+=("$name (run)")
  fi
  echo "   $(wc -l <<<"$installed") packages, $(du -sh "$venv" | cut -f1)"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "install check FAILED: ${failed[*]}"
  exit 1
fi
echo "every package installs alone and runs from outside the workspace"
