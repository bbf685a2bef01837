"""PAC-Bayes certificates of distilled students (issue 12; theory.md §7) — thin CLI over
:mod:`kdbounds.studies.certify_students`.

    python experiments/certify_students.py --preset smoke --out /tmp/cert-smoke
    OMP_NUM_THREADS=2 python experiments/certify_students.py --preset cpu --out results/certify-cpu

    python experiments/certify_students.py --merge OUT_SEED0 OUT_SEED1 --out OUT   # one folder per seed

Writes ``OUT/results.json`` (strict JSON, a list ``certificates``), ``OUT/certificates.csv`` and
``OUT/certificates.png``; trained models are cached under ``--cache-root`` (default ``OUT/runs``).
"""

from __future__ import annotations

import argparse

from kdbounds.studies.certify_students import PRESETS, merge_results, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--cache-root", default=None, help="run cache folder (default OUT/runs)")
    ap.add_argument("--data-root", default=None, help="CIFAR-10 location (default $KDBOUNDS_DATA, then standard places)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                    help="merge finished runs (same preset, different seeds) into --out instead of running")
    a = ap.parse_args(argv)
    if a.merge:
        res = merge_results(a.merge, a.out)
        print(f"merged {len(res.certificates)} certificates (seeds {res.config['seeds']}) -> {a.out}/results.json")
        return 0
    cfg = PRESETS[a.preset]
    if a.data_root is not None:
        cfg = cfg.replace(data_root=a.data_root)
    if a.seeds is not None:
        cfg = cfg.replace(seeds=tuple(a.seeds))
    res = run(cfg, a.out, cache_root=a.cache_root, progress=not a.no_progress)
    print(f"{len(res.certificates)} certificates in {res.seconds:.0f} s -> {a.out}/results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
