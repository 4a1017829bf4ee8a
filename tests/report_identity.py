"""Regenerate ``harness report`` for every committed sweep in results/ (and
the committed comparison) into a temporary copy, and say which files differ
from the committed ones. results/ itself is only read.

    python tests/report_identity.py     # exit status 1 if any file differs"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARED = {"compare-depth-width-vs-best": ("depth-width", "best")}


def _files(folder: Path):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "runs" not in p.parts)


def _harness(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True)


def check(results: Path = ROOT / "results"):
    """``[(sweep, file, what)]`` of every regenerated file that differs or is missing."""
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "results"
        shutil.copytree(results, copy, symlinks=True)
        for folder in sorted(p for p in copy.iterdir() if (p / "sweep.toml").exists()):
            for name in ("report.md", "report.html", "comparison.csv", "plots"):
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            done = _harness("report", str(folder))
            if done.returncode:
                differ.append((folder.name, "-", f"exit {done.returncode}: {done.stderr.strip()[-300:]}"))
        for name, (a, b) in COMPARED.items():
            shutil.rmtree(copy / name)
            done = _harness("compare", str(copy / a), str(copy / b), "--out", str(copy / name))
            if done.returncode:
                differ.append((name, "-", f"exit {done.returncode}: {done.stderr.strip()[-300:]}"))
        for folder in sorted(p for p in results.iterdir() if (p / "sweep.toml").exists() or p.name in COMPARED):
            for rel in _files(folder):
                new = copy / folder.name / rel
                if not new.exists():
                    differ.append((folder.name, str(rel), "not written"))
                elif new.read_bytes() != (folder / rel).read_bytes():
                    differ.append((folder.name, str(rel), "differs"))
    return differ


if __name__ == "__main__":
    found = check()
    for sweep, rel, what in found:
        print(f"{sweep}/{rel}: {what}")
    print("all regenerated reports byte-identical" if not found else f"{len(found)} files differ")
    sys.exit(1 if found else 0)
