"""CSV files beyond the Kaggle digit layout: a label column and numeric
features (standardized on the training rows), and the odd input a user
meets: a BOM, one class, one row, a stray huge label, inf settings."""
import json
import statistics

import numpy as np
import pytest

from harness import data
from harness.cli import main
from harness.errors import ConfigError, DataError

from helpers import make_digits, write_csv

GRID = """
[sweep]
name = "tab"
seeds = [0, 1]
[data]
path = "{data}"
{label}validation = 0.25
[train]
optimizer = "adam"
lr = 0.01
batch_size = 32
iterations = 60
eval_every = 10
[grid]
depth = [1]
width = [16]
"""


def write_table(path, n=240, seed=0, label_first=True, bom=False):
    """Three classes told apart by features on very different scales (a
    centimetre-sized one, a thousand-sized one, a noise one); returns the
    path, ``X: (n, 3)`` and ``y: (n,)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = np.column_stack([0.01 * y + 0.003 * rng.normal(size=n),
                         1000 + 300 * (y == 2) + 50 * rng.normal(size=n),
                         rng.normal(size=n)]).tolist()  # Python floats: repr writes them exactly
    if label_first:
        lines = ["kind,length,mass,noise"] + [f"{y[i]},{X[i][0]!r},{X[i][1]!r},{X[i][2]!r}" for i in range(n)]
    else:
        lines = ["length,mass,kind,noise"] + [f"{X[i][0]!r},{X[i][1]!r},{y[i]},{X[i][2]!r}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig" if bom else "utf-8")
    return path, X, y


def _one_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error: "), err
    return err


def test_a_table_of_numbers_loads_with_its_first_column_as_the_label(tmp_path):
    path, X, y = write_table(tmp_path / "t.csv")
    src = data.load_csv(path)
    assert src.scaling == "standardize" and src.X.dtype == np.float64
    assert src.n_features == 3 and src.n_classes == 3
    np.testing.assert_array_equal(src.y, y)
    np.testing.assert_array_equal(src.X, np.array(X))  # repr round-trips floats exactly


def test_features_are_standardized_with_the_training_rows_alone(tmp_path):
    path, X, y = write_table(tmp_path / "t.csv")
    src = data.load_csv(path)
    s = data.split(src, train_size=100, validation=0.25, data_seed=3, dtype="float64")
    perm = np.random.default_rng(3).permutation(240)
    train, val = perm[:100], perm[240 - 60:]
    # mean and population std of each column of the training rows, worked out in plain Python
    mean = [statistics.fmean(X[i][j] for i in train) for j in range(3)]
    std = [statistics.pstdev([X[i][j] for i in train]) for j in range(3)]
    want_train = [[(X[i][j] - mean[j]) / std[j] for j in range(3)] for i in train]
    want_val = [[(X[i][j] - mean[j]) / std[j] for j in range(3)] for i in val]
    np.testing.assert_allclose(s.X_train, want_train, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.X_val, want_val, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s.y_val, y[val])
    # the validation rows were not used: their own mean is not the one removed
    assert abs(s.X_val.mean(axis=0)).max() > 1e-3
    f32 = data.split(src, 100, 0.25, 3, "float32")
    assert f32.X_train.dtype == np.float32
    np.testing.assert_allclose(f32.X_train, want_train, rtol=1e-5, atol=1e-6)


def test_a_constant_feature_is_centred_not_divided_by_zero(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("y,a,b\n" + "".join(f"{i % 2},{i},7\n" for i in range(20)))
    s = data.split(data.load_csv(path), None, 0.25, 0, "float64")
    assert np.all(s.X_train[:, 1] == 0) and np.all(s.X_val[:, 1] == 0)
    assert np.isfinite(s.X_train).all()


def test_pixels_keep_their_scaling_bit_for_bit(tiny_idx, tiny_csv):
    for src in (data.load_idx_folder(tiny_idx), data.load_csv(tiny_csv)):
        assert src.scaling == "pixels" and src.X.dtype == np.uint8
        for dtype in ("float32", "float64"):
            s = data.split(src, 120, 0.2, 0, dtype)
            perm = np.random.default_rng(0).permutation(len(src.X))
            want = src.X[perm[:120]].astype(dtype)
            want /= 255  # the scaling pixels have always had
            np.testing.assert_array_equal(s.X_train, want)
            np.testing.assert_array_equal(s.X_val, src.X[perm[len(src.X) - 60:]].astype(dtype) / 255)
        assert "pixels scaled by 1/255" in data.describe_rows(src, 120, 0.2)


def test_the_label_column_can_be_named(tmp_path):
    middle, X, y = write_table(tmp_path / "middle.csv", label_first=False)
    src = data.load_csv(middle, label_column="kind")
    np.testing.assert_array_equal(src.y, y)
    np.testing.assert_array_equal(src.X, np.array(X))  # the features keep their order, the label taken out
    # the same bytes with another label column are other data; naming the first column changes nothing
    two = tmp_path / "two.csv"
    two.write_text("a,b,x\n0,1,0.5\n1,0,0.25\n1,1,0.75\n")
    default, named_a, named_b = (data.load_csv(two, label_column=c) for c in (None, "a", "b"))
    assert default.fingerprint == named_a.fingerprint != named_b.fingerprint
    assert list(named_b.y) == [1, 0, 1] and named_b.X.tolist() == [[0, 0.5], [1, 0.25], [1, 0.75]]
    with pytest.raises(DataError, match=r"middle\.csv: label_column = 'species', but the header has no column"):
        data.load_csv(middle, label_column="species")
    with pytest.raises(DataError, match="names a CSV column, but this is an IDX folder"):
        data.load_source(path=str(tmp_path), label_column="kind")
    with pytest.raises(ConfigError, match="label_column = 'kind' names a column of a CSV file; set path too"):
        main(["--debug", "train", "--label-column", "kind"])


@pytest.mark.parametrize("text,message", [
    ("y,a\n0,1.5\n1,\n", "line 3, column 'a': an empty cell is not a number"),
    ("y,a\n0,1.5\n1,nan\n", "line 3, column 'a': value nan is not a finite number"),
    ("y,a\n0,1.5\n1,-inf\n", "line 3, column 'a': value -inf is not a finite number"),
    ("y,a\n0,1.5\n1,red\n", "line 3, column 'a': 'red' is not a number"),
    ("y,a\n0,1.5\ncat,2\n", "line 3, column 'y': label 'cat' is not a whole number"),
    ("y,a\n0,1.5\n1.5,2\n", "line 3, column 'y': label 1.5 is not a class number"),
    ("y,a\n0,1.5\n-2,2\n", "line 3, column 'y': label -2 is not a class number"),
    ("0,1.5\n1,2\n", "line 1 holds numbers, not column names"),
    ("y,,b\n0,1,2\n", "header column 2 has no name"),
    ("y\n0\n1\n", "no feature columns besides the label 'y'"),
])
def test_bad_tables_are_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        data.load_csv(path)
    assert str(e.value).startswith(f"{path}: ")


def test_whole_labels_written_as_floats_are_classes(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("y,a\n0.0,1\n2.0,2\n1.0,3\n")
    assert list(data.load_csv(path).y) == [0, 2, 1] and data.load_csv(path).n_classes == 3


@pytest.mark.slow
def test_a_sweep_on_a_table_says_and_records_its_scaling(tmp_path, capsys):
    path, _, _ = write_table(tmp_path / "t.csv", label_first=False)
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=path.name, label='label_column = "kind"\n'))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert ("data: 180 training rows, 60 validation rows (0.25 of the 240 rows of the training file); "
            "3 features, standardized (mean and std of the training rows)") in err
    runs = list((tmp_path / "out" / "tab" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        conf = json.loads((run / "config.json").read_text())
        assert conf["scaling"] == "standardize" and conf["label_column"] == "kind" and conf["layers"] == [3, 16, 3]
        status = json.loads((run / "status.json").read_text())
        # standardized, the classes apart in a feature of scale 0.01 beside one of scale 1000 are learnt
        assert status["status"] == "done" and status["final_val_acc"] > 0.9
    assert (tmp_path / "out" / "tab" / "report.md").is_file()


def test_a_bom_before_the_header_is_accepted(tmp_path):
    path, _, y = write_table(tmp_path / "bom.csv", bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    src = data.load_csv(path, label_column="kind")
    np.testing.assert_array_equal(src.y, y)
    X, y = make_digits(30)
    kaggle = write_csv(tmp_path / "k.csv", X, y)
    kaggle.write_bytes(b"\xef\xbb\xbf" + kaggle.read_bytes())
    src = data.load_csv(kaggle)
    assert src.scaling == "pixels"
    np.testing.assert_array_equal(src.X, X)


@pytest.mark.parametrize("text,message", [
    ("label,pixel0\n3,1\n3,2\n3,9\n", "every row has label 3; a classifier needs at least two classes"),
    ("label,pixel0\n1,2\n", "every row has label 1; a classifier needs at least two classes"),
    ("label,pixel0\n1,2\n0,4\n", "validation = 0.25 leaves 0 of its 2 rows for validation"),
    ("y,a\n0,1\n1,2\n999999999,3\n1,2\n", "line 4, column 'y': label 999999999 would make 1,000,000,000 classes"),
])
@pytest.mark.slow
def test_unusable_data_is_one_line_naming_the_file_and_writes_nothing(tmp_path, capsys, text, message):
    path = tmp_path / "odd.csv"
    path.write_text(text)
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=path.name, label=""))
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert str(path) in err and message in err
    assert not out.exists()
    assert main(["train", "--path", str(path), "--layers", "1,2", "--validation", "0.25",
                 "--out", str(tmp_path / "t")]) == 2
    err = _one_line(capsys)
    assert str(path) in err and message in err
    assert not (tmp_path / "t").exists()


def test_a_single_class_in_an_idx_folder_is_refused(tmp_path):
    from helpers import write_idx_folder

    X, _ = make_digits(20)
    folder = write_idx_folder(tmp_path / "idx", X, np.full(20, 4), X, np.arange(20) % 10)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: every row has label 4"):
        data.load_idx_folder(folder)


@pytest.mark.parametrize("flag", ["--lr", "--weight-decay", "--lr-gamma", "--timeout", "--momentum", "--dropout"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_number_setting_refuses_inf_and_nan(tmp_path, capsys, flag, value):
    out = tmp_path / "t"
    assert main(["train", f"{flag}={value}", "--iterations", "1", "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert f"{flag.removeprefix('--').replace('-', '_')} = {float(value)} must be a finite number" in err
    assert not out.exists()


@pytest.mark.parametrize("old,new,message", [
    ("lr = 0.01", "lr = inf", "lr = inf must be a finite number"),
    ("lr = 0.01", "lr = 0.01\nweight_decay = nan", "weight_decay = nan must be a finite number"),
    ("seeds = [0, 1]", "seeds = [0, 1]\ncheckpoint_seconds = inf", "checkpoint_seconds: must be a number of seconds"),
    ("width = [16]", "width = [16]\n[tune]\ntrials = 2\nweight_decay = { uniform = [0, inf] }",
     "uniform: must be [low, high] finite numbers"),
])
@pytest.mark.slow
def test_a_grid_file_refuses_inf(tmp_path, tiny_csv, capsys, old, new, message):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name, label="").replace(old, new, 1))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert message in _one_line(capsys)
    assert not (tmp_path / "out").exists()
