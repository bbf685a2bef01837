"""Compare two trees of study outputs bit-for-bit, ignoring timing, CPU seconds, paths and run ids
(and ``prior_sha256``: the SHA-256 of a model file, which embeds its cache path). A refactoring that
claims "behaviour unchanged" runs every study's smoke preset before and after (same ``--threads``,
private ``--cache-root`` each) and shows this prints ``ALL IDENTICAL``::

    kdbounds-study NAME --preset smoke --threads 1 --no-progress --cache-root B/cache_NAME --out B/NAME
    python tests/studies/results_diff.py BEFORE_ROOT AFTER_ROOT   # each holding <study>/results.json, *.csv

Exit status 0 when identical, 1 otherwise (two runs of the same code at equal threads are identical).
"""
import csv, json, re, sys
from pathlib import Path

TIMING = re.compile(r"(second|cpu_s|wall|_time|time_s|elapsed|^s$|^time$)", re.I)
RUN_ID = re.compile(r"\b([a-z_0-9]+)-([a-z0-9]+)-[0-9a-f]{12}\b")
PATHS = re.compile(r"(?<![\w.])/[^\s'\"]+")

def norm(o, key=""):
    if isinstance(o, dict):
        return {k: norm(v, k) for k, v in o.items() if not TIMING.search(k) and k not in ("environment", "cache", "prior_sha256")}
    if isinstance(o, list):
        return [norm(v, key) for v in o]
    if isinstance(o, str):
        return PATHS.sub("<path>", RUN_ID.sub(r"\1-\2-<id>", o))
    return o

def diff(a, b, p=""):
    out = []
    if type(a) != type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return [f"{p}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{p}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += diff(a[k], b[k], f"{p}/{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            return [f"{p}: length {len(a)} != {len(b)}"]
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{p}[{i}]")
    elif a != b and not (a != a and b != b):
        out.append(f"{p}: {a!r} != {b!r}")
    return out

def load_csv(path):
    rows = list(csv.DictReader(open(path)))
    return [norm(r) for r in rows]

def main(before, after):
    bad = 0; n = 0
    for f in sorted(Path(before).glob("*/results.json")):
        g = Path(after) / f.relative_to(before)
        d = diff(norm(json.loads(f.read_text())), norm(json.loads(g.read_text())))
        n += 1
        print(f"{f.parent.name}/results.json: {'identical' if not d else f'{len(d)} differences'}")
        for line in d[:20]: print("   ", line)
        bad += bool(d)
        for c in sorted(f.parent.glob("*.csv")):
            d = diff(load_csv(c), load_csv(Path(after) / c.relative_to(before)))
            print(f"{c.parent.name}/{c.name}: {'identical' if not d else f'{len(d)} differences'}")
            for line in d[:10]: print("   ", line)
            bad += bool(d)
    print(f"{n} studies compared; {'ALL IDENTICAL' if not bad else f'{bad} files differ'}")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
