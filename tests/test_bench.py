"""The benchmark's building blocks on small data. No timing is asserted:
timings on a shared machine are noise; the benchmark reports them."""
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from harness import bench, bench_sweeps, mlp


def test_step_and_gemm_callables_do_the_step_s_work():
    rng = np.random.default_rng(0)
    X = rng.random((300, 20)).astype("float32")
    y = rng.integers(0, 5, 300)
    layers = [20, 16, 8, 5]
    with ThreadPoolExecutor(2) as pool:
        step = bench.ours_step(layers, X, y, "float32", pool)
        timed = {"ours": (1, step)}
        timed.update({k: (2, fn) for k, fn in bench.gemms_alone(layers, 300, "float32").items()})
        medians = bench._interleaved_medians(timed, repeats=2, settle=0)
    assert set(medians) == {"ours", "rows", "columns"} and all(v > 0 for v in medians.values())
    # the timed step trains: three calls (one warmup, two repeats) lower the loss
    fresh = mlp.init_params(layers, seed=0, dtype="float32")
    assert mlp.evaluate(step.params, X, y)[0] < mlp.evaluate(fresh, X, y)[0]


def test_interleaved_medians_time_each_callable_in_turn():
    calls = []
    timed = {name: (1, lambda name=name: calls.append(name)) for name in ("a", "b")}
    medians = bench._interleaved_medians(timed, repeats=3, warmup=2, settle=0)
    assert set(medians) == {"a", "b"}
    assert calls == ["a", "b"] * 5


def test_article_grid_is_found_and_shortened_for_quick_runs():
    full, quick = bench_sweeps.article_grid(False), bench_sweeps.article_grid(True)
    assert "iterations = 1000" in full and "iterations = 500" in full
    assert "iterations = 100" in quick and "iterations = 50" in quick


@pytest.mark.slow
def test_plot_rows_keep_same_named_ratios_of_different_sections_apart(tmp_path):
    import pandas as pd

    frame = pd.read_csv(io.StringIO(
        "section,item,value,unit,note\n"
        "step,784-10-10 float64: ours,0.04,s,\n"
        "step,784-10-10 float64: ours / GEMMs,0.95,x,target <= 1.2\n"
        "mixed,jobs = 2 / one after another,0.91,x,target <= 1.0\n"
        "article,jobs = 2 / one after another,0.97,x,target <= 1.0\n"
        "step,784-10-10 float64: ours / PyTorch,0.88,x,\n"))
    ratios = bench._ratios(frame)
    assert list(ratios.label) == ["784-10-10 float64: ours / GEMMs", "mixed: jobs = 2 / one after another",
                                  "article: jobs = 2 / one after another", "784-10-10 float64: ours / PyTorch"]
    assert list(ratios.target.fillna(-1)) == [1.2, 1.0, 1.0, -1]
    bench._plot(frame, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_section_sets_inference_against_its_gemms_at_both_batches():
    from harness import latency

    rows = []
    bench.latency_section(lambda *row: rows.append(row), nets=((16, 8, 10),))
    assert [r[1] for r in rows] == [f"16-8-10 batch {b}: {what}" for b in (1, latency.LARGE_BATCH)
                                    for what in ("inference per example", "inference / GEMMs alone")]
    assert all(r[2] > 0 for r in rows) and [r[3] for r in rows] == ["µs", "x"] * 2  # values only, never timed
