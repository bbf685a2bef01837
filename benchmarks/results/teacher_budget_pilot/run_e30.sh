#!/bin/bash
# pilot for issue 23 (>= 85 % flagship teachers): airbench_s at 30 epochs, validation = 500 held-out training images per class
cd /work/main
export KDBOUNDS_DATA=/work/shared/data OMP_NUM_THREADS=1
nice -n 5 python -m kdbounds.train teacher --recipe fast --arch airbench_s --epochs 30 --val-per-class 500 --subset-seed 0 \
   --threads 1 --eval-every 100 --out /work/runs/pilot85/airbench_s-e30 > /work/runs/pilot85/airbench_s-e30.log 2>&1
echo "airbench_s e30 rc=$?"
