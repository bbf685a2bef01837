#!/bin/bash
# pilot for issue 23's >= 85 % flagship teachers: validation accuracy (500 held-out training images per class)
# of the fast recipe at longer budgets; the test set is not used for the choice
cd /work/main
export KDBOUNDS_DATA=/work/shared/data OMP_NUM_THREADS=1
for spec in "airbench_s 16" "airbench_m 10"; do
  set -- $spec
  nice -n 5 python -m kdbounds.train teacher --recipe fast --arch $1 --epochs $2 --val-per-class 500 --subset-seed 0 \
     --threads 1 --eval-every 100 --out /work/runs/pilot85/$1-e$2 > /work/runs/pilot85/$1-e$2.log 2>&1
  echo "$1 e$2 rc=$?"
done
