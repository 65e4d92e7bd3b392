#!/usr/bin/env bash
# CIFAR-10 (JPEG copy), 4,000 labels: per-epoch validation and test errors of `fm` and `supervised`
# on cnn32, several widths and rates side by side on one GPU, each run cut at a wall-clock limit.
#
# Why: on the 2-core CPU a 60-minute run of cnn32 at width 0.25 is about 8 epochs, where `fm` is
# still behind `supervised` (benchmarks/results/cifar10_jpeg_cpu_lr1e-3). These curves say at which
# epoch, if any, `fm` pulls ahead and by how much: the epoch budget the CPU target would need. The rate is
# constant, so every epoch of a cut run is a point of the same schedule. Choices between rates are
# made on the 5,000-image validation holdout; the test set is only reported.
#
# Usage (repo root, CUDA machine): DATA=path/to/cifar10-jpeg OUT=dir LIMIT=seconds SET=rates|g0 \
#     bash benchmarks/gpu_cifar_curves.sh
# Writes OUT/cifar_runs.tgz (each run's metrics.jsonl, config.yaml, split.json, log) and prints
# each run's last epochs.
set -u
DATA=${DATA:?set DATA to a cifar10-jpeg folder (train/ and test/)}
OUT=${OUT:-/tmp/gpu_cifar_out}
LIMIT=${LIMIT:-470}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-/tmp/gpu_cifar_runs}
PY=${PY:-python3}
mkdir -p "$OUT" "$RUNS"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, torchvision, os; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
      'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(), 'cpus', os.cpu_count())"

COMMON=(--data "folder:$DATA" --config configs/cifar10_fm_cpu.yaml --data.labels=4000 --data.val_size=5000
        --optim.decay=none --epochs 300 --data.workers=2 --train.threads=1 --train.device="$DEVICE"
        --train.report=false --train.sample_every=0 ${EXTRA:-})  # EXTRA: more overrides (a smoke test)

run() {  # run NAME OVERRIDES...: one `ssgan train` in the background, stopped by SIGINT at LIMIT
  local name=$1; shift
  mkdir -p "$RUNS/$name"
  PYTHONPATH=src PYTHONUNBUFFERED=1 timeout -s INT "$LIMIT" $PY -m ssgan train "${COMMON[@]}" \
      --train.out="$RUNS/$name" "$@" > "$RUNS/$name/log.txt" 2>&1 &
}

case ${SET:-rates} in
  rates)  # the paper's rate and 1e-3, at width 0.25 and (the paper's rate) full width
    run fm_w025_lr3e-4 --method.name=fm --model.width=0.25 --optim.lr=3e-4
    run sup_w025_lr3e-4 --method.name=supervised --model.width=0.25 --optim.lr=3e-4
    run fm_w025_lr1e-3 --method.name=fm --model.width=0.25 --optim.lr=1e-3
    run sup_w025_lr1e-3 --method.name=supervised --model.width=0.25 --optim.lr=1e-3
    run fm_w1_lr3e-4 --method.name=fm --model.width=1 --optim.lr=3e-4
    run sup_w1_lr3e-4 --method.name=supervised --model.width=1 --optim.lr=3e-4 ;;
  g0)  # G's Adam beta1 0 (Dai et al.'s), alone and with the pull-away term, at width 0.25 and rate 1e-3
    run fm_g0_w025_lr1e-3 --method.name=fm --optim.g_beta1=0 --model.width=0.25 --optim.lr=1e-3
    run badgan_g0_w025_lr1e-3 --method.name=badgan --optim.g_beta1=0 --model.width=0.25 --optim.lr=1e-3
    run fm_w025_lr1e-3 --method.name=fm --model.width=0.25 --optim.lr=1e-3 ;;
  *) echo "unknown SET=$SET (rates, g0)"; exit 2 ;;
esac
wait

tar czf "$OUT/cifar_runs.tgz" --exclude='checkpoints' --exclude='*.png' -C "$RUNS" .
for f in "$RUNS"/*/log.txt; do echo "== $f"; grep -E "^epoch|Error|error" "$f" | tail -4; done
