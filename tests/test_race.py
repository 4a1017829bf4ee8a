"""The bench's sweep race: its structure, not its timing (timings on a
shared machine are noise; the bench reports them)."""
import csv
import statistics
import sys

import pytest

from harness import race
from harness.grid import load_sweep


def test_the_race_is_the_same_eight_runs_for_every_tool(tmp_path):
    r = race.Race()
    assert r.hidden == ((64,), (256,), (64, 64), (256, 256)) and r.seeds == (0, 1) and r.runs == 8
    cmds = race.commands(r, tmp_path, 0)
    assert set(cmds) == set(race.TOOLS)
    sweep = load_sweep(tmp_path / "race.toml")
    assert len(sweep.runs) == 8 and sweep.jobs == 2
    assert {c.layers for c in sweep.runs} == {(784, *h, 10) for h in r.hidden}
    assert {c.seed for c in sweep.runs} == {0, 1}
    for c in sweep.runs:
        assert (c.optimizer, c.lr, c.batch_size, c.epochs, c.dtype) == ("adam", 0.001, 128, 1, "float32")
        assert c.eval_every > 469  # evaluated once, at the end, like the peers
    # each round writes somewhere new, so the harness never finds its runs finished
    later = race.commands(r, tmp_path, 1)
    assert all(cmds[t] != later[t] for t in race.TOOLS)
    assert cmds["torch"][2:4] == ["harness.race", "torch"] and cmds["sklearn"][3] == "sklearn"


def test_rounds_rotate_the_order_and_the_warmup_is_not_counted(tmp_path):
    calls = []

    def fake_run(argv, root):
        calls.append(argv[3] if argv[2] == "harness.race" else "harness")

    said = []
    times = race.run_race(race.Race(), tmp_path, repeats=3, warmup=1, settle=0, run=fake_run, say=said.append)
    assert calls == ["harness", "torch", "sklearn", "torch", "sklearn", "harness",
                     "sklearn", "harness", "torch", "harness", "torch", "sklearn"]
    assert {t: len(v) for t, v in times.items()} == {"harness": 3, "torch": 3, "sklearn": 3}
    assert [line.split(":")[0] for line in said] == ["  round warm-up", "  round 1", "  round 2", "  round 3"]


def test_medians_and_same_run_ratios():
    times = {"harness": [3.0, 1.0, 2.0], "torch": [4.0, 6.0, 5.0], "sklearn": [2.0, 2.5, 1.5, 9.0]}
    medians, ratios = race.summarize(times)
    assert medians == {t: statistics.median(v) for t, v in times.items()}
    assert ratios == {"torch": pytest.approx(2.0 / 5.0), "sklearn": pytest.approx(2.0 / 2.25)}


def test_the_section_reports_every_tool_and_names_a_missing_one(tmp_path, monkeypatch):
    monkeypatch.setattr(race, "available", lambda tool: tool != "sklearn")
    monkeypatch.setattr(race, "run_race", lambda r, folder, repeats, tools, say: {t: [1.0, 2.0, 4.0] for t in tools})
    rows = []
    race.race_section(7, False, lambda *row: rows.append(row), lambda text: None, tmp_path)
    items = {item: (value, unit, note) for _, item, value, unit, note in rows}
    assert items["harness: whole command"][:2] == (2.0, "s")
    assert items["harness / PyTorch + joblib"][:2] == (1.0, "x")
    assert items["scikit-learn MLPClassifier + joblib: whole command"][0] is None
    assert "not installed" in items["scikit-learn MLPClassifier + joblib: whole command"][2]
    assert not any(item == "harness / scikit-learn MLPClassifier + joblib" for item in items)


def test_the_peers_run_the_harness_s_runs_for_real(tmp_path, tiny_csv):
    """The peers' real commands on tiny data, once each (the harness's
    command is any sweep's, tested elsewhere): they train exactly the runs of
    the harness's grid file."""
    small = race.Race(depths=(1, 2), widths=(8,), seeds=(0, 1), batch_size=32, path=str(tiny_csv),
                      validation=0.25, jobs=1)  # one process each: the test's cost is the frameworks' imports
    peers = tuple(t for t in race.TOOLS[1:] if race.available(t))
    if not peers:
        pytest.skip("neither torch nor scikit-learn is installed (the bench extra)")
    times = race.run_race(small, tmp_path, repeats=1, warmup=0, settle=0, tools=peers)
    assert set(times) == set(peers) and all(len(v) == 1 and v[0] > 0 for v in times.values())
    sweep = load_sweep(tmp_path / "race.toml")
    want = {(c.layers_str, c.seed) for c in sweep.runs}
    assert want == {(layers, seed) for layers in ("16-8-10", "16-8-8-10") for seed in (0, 1)}
    for tool in peers:
        with open(tmp_path / f"{tool}-0.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 4 and {(r["layers"], int(r["seed"])) for r in rows} == want
        assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("train_acc", "val_acc"))


def test_a_failing_command_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="race command failed"):
        race._run([sys.executable, "-c", "import sys; sys.exit(3)"], str(tmp_path))
