"""The bench's PyTorch side: the same full-batch step, minibatch Adam to a
target accuracy and a minibatch epoch, as callables timed beside ours.
Each gives None when torch is not installed."""
from __future__ import annotations

import itertools
import time

import numpy as np


def torch_step(layers, X, y, dtype, threads):
    """The same step in PyTorch (nn.Linear + ReLU, CrossEntropyLoss, SGD) and
    PyTorch's own GEMMs alone (torch.matmul, examples as rows), as callables:
    ``{"step": fn, "gemms": fn}``; None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    tdtype = getattr(torch, dtype)
    mods = []
    for a, b in itertools.pairwise(layers):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1]).to(tdtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))
    weights = [m.weight.detach().T.contiguous() for m in mods[::2]]

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(Xt), yt).backward()
        opt.step()

    def gemms():
        outs, A = [], Xt
        for W in weights:
            A = A @ W
            outs.append(A)
        for i, W in enumerate(weights):
            (Xt if i == 0 else outs[i - 1]).T @ outs[i]
            if i > 0:
                outs[i] @ W.T

    return {"step": step, "gemms": gemms}


def _torch_adam_steps(layers, split, threads):
    """PyTorch training ``layers`` (nn.Linear + ReLU, CrossEntropyLoss, Adam
    at lr 1e-3) in batches of 128, a fresh shuffle per epoch: ``(model,
    steps)``, steps an endless generator of each step's training seconds
    that trains ``model`` as it goes. None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mods = []
    for a, b in itertools.pairwise(layers):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(split.X_train), torch.from_numpy(split.y_train.astype(np.int64))
    gen = np.random.default_rng(1)

    def steps():
        while True:
            order = torch.from_numpy(gen.permutation(len(X)))
            for start in range(0, len(X), 128):
                t = time.perf_counter()
                idx = order[start:start + 128]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(X[idx]), y[idx]).backward()
                opt.step()
                yield time.perf_counter() - t
    return model, steps()


def torch_to_target(split, threads, target, max_epochs, eval_every=100):
    trainer = _torch_adam_steps((784, 256, 128, 64, 10), split, threads)
    if trainer is None:
        return None, None
    import torch

    model, steps = trainer
    Xv, yv = torch.from_numpy(split.X_val), torch.from_numpy(split.y_val.astype(np.int64))
    spent = 0.0
    for it in range(1, max_epochs * -(-len(split.y_train) // 128) + 1):
        spent += next(steps)
        if it % eval_every == 0:
            with torch.no_grad():
                if (model(Xv).argmax(1) == yv).float().mean().item() >= target:
                    return spent, it
    return None, None


def torch_epoch(layers, split, threads):
    """The same epoch in PyTorch, as a callable returning its training
    seconds; None when torch is not installed."""
    trainer = _torch_adam_steps(layers, split, threads)
    if trainer is None:
        return None
    _, steps = trainer
    per_epoch = -(-len(split.y_train) // 128)
    return lambda: sum(next(steps) for _ in range(per_epoch))
