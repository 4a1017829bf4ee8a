import gzip
import hashlib
import shutil

import numpy as np
import pytest

from harness import data
from harness.errors import DataError

from helpers import idx_bytes, make_digits, write_csv, write_idx_folder


def test_bundled_mnist_loads_and_verifies():
    src = data.load_source("mnist")
    assert src.X.shape == (60000, 784) and src.X.dtype == np.uint8
    assert src.X_test.shape == (10000, 784)
    assert list(np.bincount(src.y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(src.y_test)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert list(src.y[:5]) == [5, 0, 4, 1, 9]


def test_corrupt_bundled_file_is_named(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(data.BUNDLED["mnist"], folder)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # still a valid label, but not the published file
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt: sha256"):
        data.load_idx_folder(folder)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, gz):
    X, y = make_digits(50, seed=1)
    Xt, yt = make_digits(20, seed=2)
    src = data.load_idx_folder(write_idx_folder(tmp_path / "f", X, y, Xt, yt, gz=gz))
    np.testing.assert_array_equal(src.X, X)
    np.testing.assert_array_equal(src.y, y)
    np.testing.assert_array_equal(src.X_test, Xt)
    np.testing.assert_array_equal(src.y_test, yt)
    assert src.n_features == 16 and src.n_classes == 10


def test_idx_folder_checks_its_own_sha256sums(tmp_path):
    X, y = make_digits(50)
    folder = write_idx_folder(tmp_path / "f", X, y, X, y, gz=False)
    good = hashlib.sha256((folder / "t10k-labels-idx1-ubyte").read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{good}  t10k-labels-idx1-ubyte\n{'0' * 64}  train-images-idx3-ubyte\n")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: corrupt"):
        data.load_idx_folder(folder)


def test_csv_labelled_and_unlabelled(tmp_path):
    X, y = make_digits(40)
    src = data.load_csv(write_csv(tmp_path / "a.csv", X, y))
    np.testing.assert_array_equal(src.X, X)
    np.testing.assert_array_equal(src.y, y)
    assert src.X_test is None
    unl = data.load_csv(write_csv(tmp_path / "b.csv", X))
    assert unl.y is None
    np.testing.assert_array_equal(unl.X, X)
    with pytest.raises(DataError, match="no 'label' column"):
        data.split(unl, validation=0.2)


def test_fingerprint_follows_content(tmp_path):
    X, y = make_digits(40)
    a = data.load_csv(write_csv(tmp_path / "a.csv", X, y))
    b = data.load_csv(write_csv(tmp_path / "b.csv", X, y))
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    c = data.load_csv(write_csv(tmp_path / "c.csv", X, y2))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def _folder_with(tmp_path, name, raw):
    X, y = make_digits(20)
    folder = write_idx_folder(tmp_path / "bad", X, y, X, y, gz=False)
    (folder / name).write_bytes(raw)
    return folder


@pytest.mark.parametrize("name,raw,message", [
    ("train-images-idx3-ubyte", b"\x00\x00\x08\x07" + b"\x00" * 40, "bad magic number"),
    ("train-labels-idx1-ubyte", b"\x12\x34\x56\x78" + b"\x00" * 40, "bad magic number"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((20, 4, 4)))[:-5], "truncated"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((20, 4, 4)))[:10], "truncated header"),
    ("train-labels-idx1-ubyte", idx_bytes(np.zeros(19)), "20 images but .* has 19 labels"),
    ("train-images-idx3-ubyte", b"", "empty file"),
])
def test_bad_idx_files_are_named(tmp_path, name, raw, message):
    folder = _folder_with(tmp_path, name, raw)
    with pytest.raises(DataError, match=message) as e:
        data.load_idx_folder(folder)
    assert "ubyte" in str(e.value)


def test_the_number_of_classes_is_read_off_the_labels(tmp_path):
    folder = _folder_with(tmp_path, "train-labels-idx1-ubyte", idx_bytes(np.arange(20) % 13))
    assert data.load_idx_folder(folder).n_classes == 13  # train labels reach 12, test labels 9
    with pytest.raises(DataError, match="label 10 at row 10 is outside 0..9"):
        data.load_idx_folder(folder, n_classes=10)
    assert data.load_source("mnist").n_classes == 10
    X, y = make_digits(50, n_classes=3)
    assert data.load_csv(write_csv(tmp_path / "three.csv", X, y)).n_classes == 3


def test_missing_idx_file_and_folder(tmp_path):
    X, y = make_digits(20)
    folder = write_idx_folder(tmp_path / "f", X, y, X, y)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing train-labels-idx1-ubyte"):
        data.load_idx_folder(folder)
    with pytest.raises(DataError, match="no such data"):
        data.load_source(path=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("text,message", [
    ("", "empty file"),
    ("label,pixel0,pixel1\n", "no data rows"),
    ("label,pixel0,pixel1\n1,2,3\n4,5\n", "line 3 has 2 columns, the header has 3"),
    ("label,pixel0,pixel1\n1,2,3,4\n", "line 2 has 4 columns"),
    ("label,pixel0,pixel1\n1,2,3\n4,x5,6\n", "line 3, column 'pixel0': 'x5' is not a whole number"),
    ("label,pixel0,pixel1\n1,2,3\n-1,5,6\n", "line 3, column 'label': label -1 is not a class number"),
    ("label,pixel0,pixel1\n1,2,300\n", "pixel 300 is outside 0..255"),
    ("label,pixel0,pixelX\n1,2,3\n", "header column 3 is 'pixelX'"),
])
def test_bad_csv_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        data.load_csv(path)
    assert "bad.csv" in str(e.value)


def test_split_sizes_scaling_and_seeding(tiny_idx, tiny_csv):
    src = data.load_idx_folder(tiny_idx)
    s = data.split(src, train_size=120, validation="test", data_seed=0, dtype="float32")
    assert s.X_train.shape == (120, 16) and s.X_train.dtype == np.float32
    assert s.X_val.shape == (100, 16) and s.X_test is None
    assert 0 <= s.X_train.min() and s.X_train.max() <= 1
    perm = np.random.default_rng(0).permutation(300)
    np.testing.assert_array_equal(s.y_train, src.y[perm[:120]])
    np.testing.assert_allclose(s.X_train, src.X[perm[:120]] / 255, rtol=1e-6, atol=0)  # 0 / 255 is exactly 0
    assert np.array_equal(data.split(src, 120, "test", 0).y_train, s.y_train)
    assert not np.array_equal(data.split(src, 120, "test", 1).y_train, s.y_train)

    # a fraction holds out rows of the training file, never overlapping the training rows
    f = data.split(src, None, 0.2, 0, "float64")
    assert len(f.y_val) == 60 and len(f.y_train) == 240 and f.X_train.dtype == np.float64
    assert f.X_test is not None and len(f.y_test) == 100
    np.testing.assert_array_equal(f.y_train, src.y[perm[:240]])
    np.testing.assert_array_equal(f.y_val, src.y[perm[240:]])

    csv = data.load_csv(tiny_csv)
    with pytest.raises(DataError, match="has no test split"):
        data.split(csv, validation="test")
    with pytest.raises(DataError, match="train_size = 290 but .* only 240 training rows"):
        data.split(csv, train_size=290, validation=0.2)


def test_csv_errors_name_the_real_line_past_blank_lines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("label,pixel0\n1,2\n\n\n3,x\n")
    with pytest.raises(DataError, match="line 5, column 'pixel0': 'x'"):
        data.load_csv(path)
    path.write_text("label,pixel0\n1,2\n\n3,256\n")
    with pytest.raises(DataError, match="line 4, column 'pixel0': pixel 256"):
        data.load_csv(path)
