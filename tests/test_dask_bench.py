"""The bench's Dask section runs on tiny settings and says what it measured."""
import pytest

pytest.importorskip("dask.distributed")


@pytest.mark.slow
def test_the_dask_section_measures_overhead_and_bytes_per_run():
    from harness.dask_bench import dask_section

    rows = {}
    dask_section(True, lambda section, item, value, unit, note="": rows.__setitem__(item, (section, value, unit)),
                 lambda text: None)
    assert {s for s, _, _ in rows.values()} == {"dask"}
    assert rows["loky: wall seconds per run"][1] > 0 and rows["dask: wall seconds per run"][1] > 0
    for net in ("small", "large"):
        assert rows[f"{net} net: tasks: bytes per run"][1] > 500  # a RunConfig and request, no data
        assert rows[f"{net} net: records: bytes per run"][1] > 1000  # its files came back
    assert rows["large net: one checkpoint: bytes"][1] > 1_000_000  # 16-512-512-10's parameters, 4 bytes each
