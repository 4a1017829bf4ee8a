"""A run's settings: one frozen, strictly validated dataclass, hashed into a run id."""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, fields

from .errors import ConfigError
from .mlp import ACTIVATIONS, DTYPES, INITS
from .optim import OPTIMIZERS, SCHEDULES

# Which grid-file section each setting lives in; everything else is [train].
DATA_KEYS = ("dataset", "path", "label_column", "train_size", "validation", "data_seed")
# The data's fingerprint identifies it, label column included (see csvdata.parse).
NOT_HASHED = ("dataset", "path", "label_column", "timeout")
CHOICES = {"optimizer": OPTIMIZERS, "activation": ACTIVATIONS, "init": INITS, "dtype": DTYPES,
           "lr_schedule": SCHEDULES}
EXCLUSIVE = ("iterations", "epochs")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run's numbers."""

    layers: tuple[int, ...] = (784, 10, 10)
    iterations: int = 500
    lr: float = 0.1
    optimizer: str = "gd"
    batch_size: int = 0          # 0 = full batch
    activation: str = "relu"
    init: str = "he"
    dtype: str = "float32"
    eval_every: int = 10
    seed: int = 0                # init (and minibatch order) seed
    weight_decay: float = 0.0    # L2 on the weights, not the biases
    momentum: float = 0.9        # the momentum optimizer's coefficient
    article_bias_grad: bool = False
    dropout: float = 0.0         # inverted dropout rate on the hidden layers
    lr_schedule: str = "constant"  # constant | step | cosine
    lr_step_every: int = 1000    # step: iterations between lr drops
    lr_gamma: float = 0.1        # step: factor of each drop
    warmup: int = 0              # iterations of linear lr warm-up
    epochs: int = 0              # instead of iterations: passes over the training rows
    early_stopping: int = 0      # patience, in evaluations; 0 = off
    timeout: float = 0.0         # seconds; a run still going then fails. 0 = none
    dataset: str = "mnist"
    path: str = ""               # "" = the bundled dataset
    label_column: str = ""       # a CSV's label column; "" = its first
    train_size: int = 0          # 0 = every available training row
    validation: str | float = "test"
    data_seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        _validate(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "settings") -> "RunConfig":
        """Build from plain values (e.g. parsed TOML). Unknown keys and wrong
        types raise :class:`ConfigError`, naming ``where`` and the key."""
        names = [f.name for f in fields(cls)]
        for key in d:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                raise ConfigError(f"{where}: unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        check_exclusive(d, where)
        values = {k: coerce(k, v, where) for k, v in d.items()}
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    @classmethod
    def from_saved(cls, conf: dict) -> "RunConfig":
        """Rebuild from a run's ``config.json`` (which also records where it
        ran, and both iterations and epochs)."""
        return cls(**{f.name: coerce(f.name, conf[f.name]) for f in fields(cls) if f.name in conf})

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def run_id(self, data_fingerprint: str) -> str:
        """A stable hash of every setting plus the data's content fingerprint.
        Left out: where the data lives (``dataset``, ``path``), which the
        fingerprint identifies, so moving a data folder keeps the ids; and
        ``timeout``, which limits a run but does not change its numbers."""
        # Only settings that differ from their defaults, so adding a setting
        # later leaves the ids of earlier runs (and their results) valid.
        settings = {k: v for k, v in self.to_dict().items()
                    if k not in NOT_HASHED and v != _DEFAULTS[k]}
        blob = json.dumps({"config": settings, "data": data_fingerprint}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.layers) - 2

    @property
    def width(self) -> int:
        """Width of the first hidden layer (0 for a network without one)."""
        return self.layers[1] if len(self.layers) > 2 else 0

    @property
    def layers_str(self) -> str:
        return "-".join(map(str, self.layers))


# One line per setting, for `harness train --help`.
HELP = {
    "layers": "layer list, input size first and classes last, e.g. 784,256,128,64,10",
    "iterations": "training steps",
    "lr": "learning rate",
    "optimizer": "gd (full batch), sgd (minibatch), momentum or adam",
    "batch_size": "examples per step; 0 = full batch",
    "activation": "hidden activation: relu, leaky_relu, tanh or sigmoid",
    "init": "he, xavier, or article (N(0,1)*sqrt(1/n_out) for W and b)",
    "dtype": "float32 or float64",
    "eval_every": "iterations between validation evaluations",
    "seed": "init (and minibatch order) seed",
    "weight_decay": "L2 on the weights, not the biases",
    "momentum": "coefficient of the momentum optimizer",
    "article_bias_grad": "the article's quirk: the output bias gradient is one scalar",
    "dropout": "inverted dropout rate on the hidden layers, in [0, 1)",
    "lr_schedule": "constant, step or cosine",
    "lr_step_every": "step schedule: iterations between lr drops",
    "lr_gamma": "step schedule: factor of each drop",
    "warmup": "iterations of linear lr warm-up",
    "epochs": "instead of --iterations: passes over the training rows",
    "early_stopping": "patience in evaluations; keeps the best evaluation's parameters. 0 = off",
    "timeout": "seconds; a run still going then fails. 0 = none",
    "dataset": "bundled dataset (mnist)",
    "path": "instead: an IDX folder, or a CSV with a header: the label, then numbers (Kaggle pixel0... or any)",
    "label_column": "the CSV column holding the labels (class numbers 0, 1, ...); default: the first",
    "train_size": "first N rows of a shuffle of the training file, after the validation rows are held out; 0 = all",
    "validation": "test (the official test split), or a fraction of the whole training file held out for "
                  "validation, taken before train_size: 0.05 of MNIST's 60,000 rows is 3,000 rows whatever "
                  "train_size is",
    "data_seed": "seed of that shuffle",
}


def check_exclusive(keys, where=None):
    """``iterations`` and ``epochs`` are two ways to say how long to train."""
    if all(k in keys for k in EXCLUSIVE):
        raise ConfigError((f"{where}: " if where else "") + "give either iterations or epochs, not both")


def _field_types():
    return {f.name: f.type for f in fields(RunConfig)}


def _type_name(v):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def coerce(key, value, where="settings"):
    """Check one value's type strictly and return it in the dataclass's form."""
    kind = _field_types()[key]

    def bad(expected):
        return ConfigError(f"{where}: {key} must be {expected}, got {_type_name(value)} {value!r}")

    if kind == "tuple[int, ...]":
        if not isinstance(value, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
            raise bad("a list of integers such as [784, 10, 10]")
        return tuple(value)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise bad("a number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key == "validation":
        if value == "test":
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad('"test" or a fraction such as 0.2')
    raise AssertionError(f"no coercion for {key}: {kind}")


def _validate(c: RunConfig):
    for f in fields(c):  # inf passes "> 0" and nan passes "< 0": neither is a setting
        value = getattr(c, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name} = {value} must be a finite number")
    for key, choices in CHOICES.items():
        value = getattr(c, key)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), choices, n=1)
            raise ConfigError(f"{key} = {value!r} is not one of {', '.join(choices)}"
                              + (f"; did you mean {hint[0]!r}?" if hint else ""))
    if len(c.layers) < 2 or any(n < 1 for n in c.layers):
        raise ConfigError(f"layers = {list(c.layers)} must hold at least two sizes, all positive")
    for key in ("iterations", "eval_every"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{key} = {getattr(c, key)} must be positive")
    if not c.lr > 0:
        raise ConfigError(f"lr = {c.lr} must be positive")
    for key in ("batch_size", "train_size", "seed", "data_seed"):
        if getattr(c, key) < 0:
            raise ConfigError(f"{key} = {getattr(c, key)} must be 0 or more")
    if not 0 <= c.dropout < 1:
        raise ConfigError(f"dropout = {c.dropout} must be in [0, 1)")
    for key in ("lr_step_every", "warmup", "epochs", "early_stopping"):
        if getattr(c, key) < 0 or (key == "lr_step_every" and getattr(c, key) < 1):
            raise ConfigError(f"{key} = {getattr(c, key)} must be " + ("positive" if key == "lr_step_every" else "0 or more"))
    if not c.lr_gamma > 0:
        raise ConfigError(f"lr_gamma = {c.lr_gamma} must be positive")
    if c.timeout < 0:
        raise ConfigError(f"timeout = {c.timeout} must be 0 (none) or a number of seconds")
    if c.weight_decay < 0:
        raise ConfigError(f"weight_decay = {c.weight_decay} must be 0 or more")
    if not 0 <= c.momentum < 1:
        raise ConfigError(f"momentum = {c.momentum} must be in [0, 1)")
    if c.optimizer == "gd" and c.batch_size:
        raise ConfigError(f"optimizer 'gd' is full batch but batch_size = {c.batch_size}; "
                          "use optimizer 'sgd' for minibatches")
    if c.optimizer == "sgd" and not c.batch_size:
        raise ConfigError("optimizer 'sgd' needs batch_size > 0; use 'gd' for full batch")
    if c.label_column and not c.path:
        raise ConfigError(f"label_column = {c.label_column!r} names a column of a CSV file; set path too")
    if c.validation != "test" and not 0 < c.validation < 1:
        raise ConfigError(f'validation = {c.validation} must be "test" or a fraction in (0, 1)')


def check_fits(c: RunConfig, n_features: int, n_classes: int, where="settings"):
    """The layer list must start at the data's feature count and end at its class count."""
    if c.layers[0] != n_features:
        raise ConfigError(f"{where}: layers {c.layers_str} start at {c.layers[0]}, "
                          f"but the data has {n_features} features")
    if c.layers[-1] != n_classes:
        raise ConfigError(f"{where}: layers {c.layers_str} end at {c.layers[-1]}, "
                          f"but the data has {n_classes} classes")


_DEFAULTS = {f.name: f.default for f in fields(RunConfig)}
_DEFAULTS["layers"] = list(_DEFAULTS["layers"])
