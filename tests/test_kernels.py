"""Layouts keyed on the OpenBLAS kernel (issue 30): the table is followed,
recorded, and a checkpoint is not continued under another kernel unless asked."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import blas, mlp, store
from harness.checkpoint import ANY_KERNEL
from harness.cli import main
from harness.grid import load_sweep
from harness.kernelbench import KERNEL_ROW, side_by_side
from harness.train import run

ROOT = Path(__file__).resolve().parents[1]

# Prints the kernel, the table's layouts for it, and which way round
# _matmul really handed a product to BLAS (a transposed hand-off comes
# back Fortran-ordered), for every dtype and product.
PROBE = """
import json, numpy as np
from harness import blas, mlp
A = {d: np.ones((6, 5), d) for d in mlp.DTYPES}
B = {d: np.ones((5, 4), d) for d in mlp.DTYPES}
used = {d: {k: bool(blas.matmul(A[d], B[d], k).flags.f_contiguous) for k in blas.PRODUCTS} for d in mlp.DTYPES}
print(json.dumps({"kernel": blas.blas_kernel(), "used": used,
                  "record": {d: blas.layouts_record(d) for d in mlp.DTYPES}}))
"""


def _probe(coretype=None):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_skylakex_layouts_are_those_the_committed_results_were_trained_with():
    # every run in results/ was trained under SkylakeX with these: changing
    # them would change the committed numbers in their last bits
    assert blas.LAYOUTS["SkylakeX"] == {"float64": dict.fromkeys(blas.PRODUCTS, True),
                                       "float32": dict.fromkeys(blas.PRODUCTS, False)}
    assert blas.DEFAULT_KERNEL in blas.LAYOUTS
    for table in blas.LAYOUTS.values():
        assert set(table) == set(mlp.DTYPES) and all(set(t) == set(blas.PRODUCTS) for t in table.values())


@pytest.mark.parametrize("coretype", [None, "Haswell", "SandyBridge"])
def test_the_layouts_follow_the_kernel_in_the_table(coretype):
    got = _probe(coretype)
    kernel = got["kernel"]
    if coretype and kernel.lower() != coretype.lower():
        pytest.skip(f"OpenBLAS here cannot run the {coretype} kernel")
    want = blas.LAYOUTS.get(kernel, blas.LAYOUTS[blas.DEFAULT_KERNEL])
    assert got["used"] == want
    for d in mlp.DTYPES:
        assert got["record"][d] == {k: "transposed" if want[d][k] else "as written" for k in blas.PRODUCTS}


def test_an_unknown_kernel_gets_the_default_layouts_and_a_note_in_the_bench(monkeypatch):
    from harness import bench

    assert blas.layouts("NoSuchKernel") == blas.LAYOUTS[blas.DEFAULT_KERNEL]
    monkeypatch.setattr(blas, "blas_kernel", lambda: "NoSuchKernel")
    note = bench.kernel_note()
    assert "NoSuchKernel" in note and blas.DEFAULT_KERNEL in note and "\n" not in note
    monkeypatch.setattr(blas, "blas_kernel", lambda: "SkylakeX")
    assert bench.kernel_note() is None


def test_set_layouts_is_followed_and_undone():
    A, B = np.ones((6, 5), np.float32), np.ones((5, 4), np.float32)
    kernel_way = blas.layouts(dtype="float32")["forward"]
    try:
        blas.set_layouts({d: dict.fromkeys(blas.PRODUCTS, not kernel_way) for d in mlp.DTYPES})
        assert blas.matmul(A, B, "forward").flags.f_contiguous is (not kernel_way)
    finally:
        blas.set_layouts(None)
    assert blas.matmul(A, B, "forward").flags.f_contiguous is kernel_way


ONE_RUN = """
[sweep]
name = "one"
[data]
path = "{data}"
validation = 0.25
[train]
layers = [16, 8, 10]
iterations = 400
eval_every = 10
"""


def _paused_sweep(tmp_path, tiny_csv):
    grid = tmp_path / "one.toml"
    grid.write_text(ONE_RUN.format(data=tiny_csv.name))
    sweep = load_sweep(grid)
    folder = tmp_path / "out" / "one" / "runs" / sweep.run_ids[0]
    assert run(sweep.runs[0], folder, stop_at=150, threads=1)["paused_at"] == 150
    return grid, folder


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_config_json_and_the_checkpoint_record_the_kernel_and_layouts(tmp_path, tiny_csv):
    _, folder = _paused_sweep(tmp_path, tiny_csv)
    conf = json.loads((folder / "config.json").read_text())
    assert conf["blas_kernel"] == blas.blas_kernel()
    assert conf["blas_layouts"] == blas.layouts_record(conf["dtype"])
    assert set(conf["blas_layouts"]) == set(blas.PRODUCTS)
    assert store.load_checkpoint(folder)[1]["blas_kernel"] == blas.blas_kernel()


def test_a_resumed_sweep_refuses_a_checkpoint_of_another_kernel_unless_told(tmp_path, tiny_csv, monkeypatch, capsys):
    grid, folder = _paused_sweep(tmp_path, tiny_csv)
    before = _tree(tmp_path / "out")
    then = blas.blas_kernel()
    monkeypatch.setattr(blas, "blas_kernel", lambda: "OtherKernel")
    monkeypatch.delenv(ANY_KERNEL, raising=False)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and then in err[0] and "OtherKernel" in err[0] and ANY_KERNEL in err[0]
    assert _tree(tmp_path / "out") == before  # a refusal writes nothing
    # told to: it continues from the checkpoint (150 rows kept), to the end
    monkeypatch.setenv(ANY_KERNEL, "1")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert "continuing 1 run from its checkpoint" in "".join(capsys.readouterr())
    assert len(pd.read_csv(folder / "metrics.csv")) == 400
    assert store.read_status(folder)["status"] == "done"


def test_the_same_kernel_continues_without_being_told(tmp_path, tiny_csv, monkeypatch, capsys):
    grid, folder = _paused_sweep(tmp_path, tiny_csv)
    monkeypatch.delenv(ANY_KERNEL, raising=False)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert "continuing 1 run from its checkpoint" in "".join(capsys.readouterr())


def test_resume_and_threads_are_bit_identical_under_the_haswell_kernel():
    if _probe("Haswell")["kernel"] != "Haswell":
        pytest.skip("needs an OpenBLAS that can be switched to the Haswell kernel")
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    tests = ["tests/test_continuation.py::test_a_run_paused_and_continued_matches_one_that_never_stopped",
             "tests/test_parallel.py::test_chunked_minibatch_equals_one_plain_pass"]
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]


def test_kernels_side_by_side_names_the_kernel_each_process_ran():
    def frame(kernel, ours):
        return pd.DataFrame([
            {"section": "machine", "item": f"AMD EPYC, 2 cores; numpy 2 with openblas 0.3.31, kernel {kernel}",
             "value": None, "unit": "", "note": ""},
            {"section": "step", "item": "784-10-10 float32: ours", "value": ours, "unit": "s", "note": ""}])
    table = side_by_side({"Haswell": frame("Haswell", 0.5), "SkylakeX": frame("Haswell", 0.25)})
    assert list(table.columns) == ["Haswell", "SkylakeX"]
    # a machine without AVX-512 asked for SkylakeX runs Haswell: the table says so
    assert table.loc[KERNEL_ROW].tolist() == ["Haswell", "Haswell"]
    assert table.loc["step: 784-10-10 float32: ours"].tolist() == [0.5, 0.25]


def test_the_bench_times_each_product_in_its_other_layout_and_says_where_the_table_loses():
    from harness import bench_layouts

    seen = []
    made = bench_layouts.layout_contestants(lambda: lambda: seen.append(blas.layouts_record("float32")), "float32")
    for name, fn in made.items():
        fn()
    table = blas.layouts_record("float32")
    other = {"as written": "transposed", "transposed": "as written"}
    assert [name for name in made] == [f"flip {k}" for k in (*blas.PRODUCTS, "all")]
    for k, got in zip(blas.PRODUCTS, seen):  # exactly one product flipped, each in turn
        assert got == {**table, k: other[table[k]]}
    assert seen[-1] == {k: other[v] for k, v in table.items()}  # then all of them
    assert blas.layouts_record("float32") == table  # and the kernel's table back afterwards
    rows = []
    t = {"ours": 1.2, "flip forward": 1.0, "flip dW": 1.5, "flip dA": 1.2, "flip all": 2.4}
    bench_layouts.layout_verdicts("step", "net", "float32", t, lambda *row: rows.append(row))
    by = {row[1].split(": ")[1].split()[0]: row for row in rows}
    assert by["forward"][2] == pytest.approx(1.2) and "slower here by 20%" in by["forward"][4]
    assert by["dW"][2] == pytest.approx(0.8) and "faster by 25%" in by["dW"][4]
    assert by["dA"][2] == pytest.approx(1.0) and "the same time" in by["dA"][4]
    assert by["all"][2] == pytest.approx(0.5) and "faster by 100%" in by["all"][4]


def test_run_kernels_runs_one_fresh_process_per_kernel_and_reads_them_back(tmp_path, monkeypatch):
    from harness import kernelbench

    argv, env = kernelbench.kernel_command("Haswell", tmp_path / "k", 3, True)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and argv[1:5] == ["-m", "harness", "bench", "--cases-only"]
    assert argv[argv.index("--out") + 1] == str(tmp_path / "k") and "--quick" in argv
    # a stand-in child: reports the kernel OpenBLAS really gave it, as the bench's machine row does
    child = ("import sys, pathlib, pandas as pd; from harness import blas; out = pathlib.Path(sys.argv[1]); "
             "out.mkdir(parents=True); print('child says hello'); pd.DataFrame(["
             "{'section': 'machine', 'item': 'x, kernel ' + blas.blas_kernel(), 'value': None, 'unit': '', 'note': ''},"
             "{'section': 'step', 'item': 'ours', 'value': 1.5, 'unit': 's', 'note': ''}]).to_csv(out / 'bench.csv')")
    monkeypatch.setattr(kernelbench, "kernel_command", lambda kernel, out, repeats, quick: (
        [sys.executable, "-c", child, str(out)], {**os.environ, "OPENBLAS_CORETYPE": kernel}))
    lines = []
    table = kernelbench.run_kernels(["Haswell", "SkylakeX"], tmp_path, say=lines.append)
    assert "  [Haswell] child says hello" in lines and (tmp_path / "kernels.csv").is_file()
    assert table.loc["step: ours"].tolist() == [1.5, 1.5]
    if _probe("Haswell")["kernel"] == "Haswell":
        assert table.loc[KERNEL_ROW, "Haswell"] == "Haswell"
