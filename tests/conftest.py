"""Small data the tests write themselves."""
import pytest

from helpers import make_digits, write_csv, write_idx_folder


@pytest.fixture
def tiny_csv(tmp_path):
    X, y = make_digits(300)
    return write_csv(tmp_path / "tiny.csv", X, y)


@pytest.fixture
def tiny_idx(tmp_path):
    X, y = make_digits(300, seed=1)
    Xt, yt = make_digits(100, seed=2)
    return write_idx_folder(tmp_path / "idx", X, y, Xt, yt)


@pytest.fixture(autouse=True, scope="session")
def machine_cache(tmp_path_factory):
    """The cost model's calibration goes to a folder of this test session,
    not the user's cache (measured once, by the first sweep that needs it)."""
    import os

    folder = tmp_path_factory.mktemp("harness-cache")
    saved = {k: os.environ.get(k) for k in ("HARNESS_CACHE_DIR", "HARNESS_CALIBRATION_NOISE")}
    os.environ["HARNESS_CACHE_DIR"] = str(folder)
    # The tests load the machine themselves: keep the session's calibration
    # however busy it was, or every sweep a test starts would measure again.
    os.environ["HARNESS_CALIBRATION_NOISE"] = "inf"
    yield folder
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
