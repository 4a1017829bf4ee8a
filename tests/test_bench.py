"""The benchmark's building blocks on small data. No timing is asserted:
timings on a shared machine are noise; the benchmark reports them."""
import numpy as np

from harness import bench


def test_gemm_and_step_timers_run_on_small_data():
    rng = np.random.default_rng(0)
    X = rng.random((300, 20)).astype("float32")
    y = rng.integers(0, 5, 300)
    layers = [20, 16, 8, 5]
    g = bench.gemms_alone(layers, 300, "float32", threads=2, repeats=2)
    assert set(g) == {"rows", "columns"} and all(v > 0 for v in g.values())
    assert bench.ours_step(layers, X, y, "float32", threads=2, repeats=2) > 0


def test_median_time_calls_warmup_plus_repeats():
    calls = []
    assert bench._median_time(lambda: calls.append(1), repeats=5, warmup=2) >= 0
    assert len(calls) == 7
