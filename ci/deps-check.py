#!/usr/bin/env python3
"""Checks that the folders of rig/src depend on each other one way: prints
the folder graph and exits 1 if two folders import each other (directly or
through others). A folder is a stage (kernel, build, image, ...)."""
import re, sys, pathlib, itertools

src = pathlib.Path(__file__).resolve().parent.parent / "rig" / "src"
stages = sorted(p.name for p in src.iterdir() if p.is_dir() and p.name != "cli")
stages += [p.stem for p in src.glob("*.rs") if p.stem not in ("lib", "main")]
edges = {s: set() for s in stages}
for s in stages:
    files = list((src / s).rglob("*.rs")) if (src / s).is_dir() else [src / f"{s}.rs"]
    for f in files:
        text = f.read_text()
        # Test modules may reach anywhere; only the code's own imports count.
        text = text.split("#[cfg(test)]\nmod tests")[0]
        for m in re.finditer(r"crate::(\w+)", text):
            t = m.group(1)
            if t in edges and t != s:
                edges[s].add(t)

def reach(a, b, seen=()):
    return b in edges[a] or any(reach(n, b, seen + (a,)) for n in edges[a] if n not in seen)

bad = [(a, b) for a, b in itertools.combinations(stages, 2) if reach(a, b) and reach(b, a)]
for s in stages:
    print(f"{s:8} -> {', '.join(sorted(edges[s])) or '-'}")
for a, b in bad:
    print(f"cycle: {a} <-> {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
