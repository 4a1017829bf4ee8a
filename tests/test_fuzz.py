"""Random mutations of a valid grid file never produce a traceback: each ends
in one clean error line (exit 2) or a valid dry run (exit 0)."""
import json
import random
import tomllib

import pytest

from harness.cli import main

BASE = """
[sweep]
name = "fuzz"
jobs = 2
seeds = [0, 1]
backend = "loky"

[data]
path = "DATA"
train_size = 100
validation = 0.25
data_seed = 0

[train]
iterations = 5
lr = 0.1
optimizer = "gd"
batch_size = 0
activation = "relu"
init = "he"
dtype = "float32"
eval_every = 2

[grid]
layers = [[16, 10], [16, 8, 10]]
depth = [1, 2]
width = [4, 8]
shape = ["constant", "halving"]
lr = [0.05, 0.1]

[[include]]
layers = [16, 12, 10]
iterations = 7

[tune]
trials = 2
confirm_seeds = 1
momentum = { uniform = [0.5, 0.9] }
weight_decay = { log_uniform = [1e-5, 1e-3] }
"""

VALUES = [0, -1, 1, 2.5, -0.0, 1e308, "", "x", "relu", "test", True, False, [], [0], [[]], ["a", 1],
          {}, {"a": 1}, [16, 10], [[16, 10]], [[16, 0, 10]], 10**30, "tcp://127.0.0.1:1", [1.5], "45m",
          {"uniform": [0, 1]}, {"log_uniform": [0, 1]}, {"choice": [1, "a"]}, {"choice": []}, {"uniform": [2, 1]}]
KEYS = ["name", "jobs", "seeds", "backend", "scheduler", "dataset", "path", "train_size", "validation",
        "data_seed", "iterations", "lr", "optimizer", "batch_size", "activation", "init", "dtype", "eval_every",
        "layers", "depth", "width", "shape", "weight_decay", "momentum", "timeout", "article_bias_grad", "seed",
        "lrr", "Layers", "include", "grid", "sweep", "trials", "confirm_seeds", "budget", "tune", "dropout"]


def to_toml(doc):
    """A small TOML writer: top-level tables, arrays of tables, inline values."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if isinstance(v, int) or v == v and abs(v) != float("inf") else "nan"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    lines = [f"{json.dumps(k)} = {value(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(t, dict) for t in v))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(t, dict) for t in v):
            for t in v:
                lines.append(f"[[{json.dumps(k)}]]")
                lines += [f"{json.dumps(kk)} = {value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


def mutate(doc, rng):
    tables = [doc[k] for k in doc if isinstance(doc[k], dict)] + doc.get("include", [])
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["set", "set", "add", "delete", "nest", "empty", "section", "toplevel"])
        table = rng.choice(tables) if tables else doc
        keys = list(table)
        if kind == "set" and keys:
            table[rng.choice(keys)] = rng.choice(VALUES)
        elif kind == "add":
            table[rng.choice(KEYS)] = rng.choice(VALUES)
        elif kind == "delete" and keys:
            del table[rng.choice(keys)]
        elif kind == "nest" and keys:
            k = rng.choice(keys)
            table[k] = rng.choice([[table[k]], {"x": table[k]}, [table[k], table[k]]])
        elif kind == "empty" and keys:
            table[rng.choice(keys)] = []
        elif kind == "section":
            name = rng.choice(["sweep", "data", "train", "grid", "include", "trian", "extra", "tune"])
            doc[name] = rng.choice([{}, [], 3, "x", [{}], [{"lr": 0.1}], {"lr": [1, 2]}])
        elif kind == "toplevel":
            doc[rng.choice(KEYS)] = rng.choice(VALUES)
    return doc


def text_mutation(text, rng):
    i = rng.randrange(len(text))
    return rng.choice([text[:i] + text[i + 1:], text[:i] + rng.choice("[]=\"'{},\n#") + text[i:],
                       text[:i] + "\n" + text[i:]])


@pytest.mark.parametrize("chunk", range(6))
def test_mutated_grids_never_crash(tmp_path, tiny_csv, capsys, chunk):
    rng = random.Random(1000 + chunk)
    base = BASE.replace("DATA", tiny_csv.name)
    outcomes = {0: 0, 2: 0}
    for case in range(50):
        if rng.random() < 0.2:
            text = text_mutation(base, rng)
        else:
            text = to_toml(mutate(tomllib.loads(base), rng))
        path = tmp_path / "g.toml"
        path.write_text(text)
        code = main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")])
        out, err = capsys.readouterr()
        assert code in (0, 2), (code, text, err)
        outcomes[code] += 1
        if code == 2:
            assert err.startswith("harness: error: ") and err.count("\n") == 1, (text, err)
            assert "Traceback" not in err
        else:
            assert out.split(" runs in sweep", 1)[0].isdigit(), (text, out)
        assert not (tmp_path / "out").exists()
    assert outcomes[2] > 0  # the mutations really do produce bad grids
