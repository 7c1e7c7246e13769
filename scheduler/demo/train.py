"""Small real trainings for the demo, in pure Python so they run anywhere in seconds.

Each function is a job ``entrypoint``: it gets the job spec, trains on a synthetic
data set made from the job's seed, streams metrics as JSON lines to
``$FLEET_METRICS``, and writes ``model.json`` and ``result.json`` to
``$FLEET_OUTPUT_DIR``.
"""

from __future__ import annotations

import json
import math
import os
import random
from typing import Any

from ..runs_layout import result_file

N_FEATURES = 8


def _dataset(seed: int, n: int = 1500) -> tuple[list[list[float]], list[int]]:
    """Two noisy Gaussian blobs separated along a fixed random direction (same for every seed's split)."""
    direction = random.Random(1234)
    w_true = [direction.gauss(0, 1) for _ in range(N_FEATURES)]
    rng = random.Random(seed)
    xs, ys = [], []
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(N_FEATURES)]
        margin = sum(a * b for a, b in zip(w_true, x)) + rng.gauss(0, 1.2)
        xs.append(x)
        ys.append(1 if margin > 0 else 0)
    return xs, ys


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _emit(step: int, **metrics: float) -> None:
    path = os.environ.get("FLEET_METRICS")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in metrics.items()}}) + "\n")


def _finish(model: dict[str, Any], result: dict[str, float]) -> int:
    out = os.environ.get("FLEET_OUTPUT_DIR", ".")
    with open(os.path.join(out, "model.json"), "w") as fh:
        json.dump(model, fh)
    with open(result_file(out), "w") as fh:
        json.dump({k: round(v, 5) for k, v in result.items()}, fh)
    return 0


def _split(spec: dict[str, Any]):
    xs, ys = _dataset(int(spec.get("seed", 0)))
    cut = int(len(xs) * 0.75)
    return xs[:cut], ys[:cut], xs[cut:], ys[cut:]


def logreg(spec: dict[str, Any]) -> int:
    """Logistic regression by full-batch gradient descent with L2."""
    hyper = spec.get("hyper", {})
    lr, epochs, l2 = float(hyper.get("lr", 0.1)), int(hyper.get("epochs", 60)), float(hyper.get("l2", 0.0))
    x_tr, y_tr, x_te, y_te = _split(spec)
    w, b = [0.0] * N_FEATURES, 0.0
    for epoch in range(1, epochs + 1):
        grad_w, grad_b, loss = [0.0] * N_FEATURES, 0.0, 0.0
        for x, y in zip(x_tr, y_tr):
            p = _sigmoid(sum(a * c for a, c in zip(w, x)) + b)
            loss -= math.log(max(1e-12, p if y else 1 - p))
            for i in range(N_FEATURES):
                grad_w[i] += (p - y) * x[i]
            grad_b += p - y
        n = len(x_tr)
        w = [wi - lr * (g / n + l2 * wi) for wi, g in zip(w, grad_w)]
        b -= lr * grad_b / n
        if epoch % 10 == 0 or epoch == epochs:
            _emit(epoch, loss=loss / n)
    acc = sum((_sigmoid(sum(a * c for a, c in zip(w, x)) + b) > 0.5) == bool(y) for x, y in zip(x_te, y_te)) / len(y_te)
    return _finish({"kind": "logreg", "w": w, "b": b}, {"accuracy": acc, "loss": loss / len(x_tr)})


def mlp(spec: dict[str, Any]) -> int:
    """A one-hidden-layer tanh MLP trained with SGD."""
    hyper = spec.get("hyper", {})
    lr, epochs, hidden = float(hyper.get("lr", 0.05)), int(hyper.get("epochs", 15)), int(hyper.get("hidden", 8))
    rng = random.Random(int(spec.get("seed", 0)) + 99)
    x_tr, y_tr, x_te, y_te = _split(spec)
    w1 = [[rng.gauss(0, 0.5) for _ in range(N_FEATURES)] for _ in range(hidden)]
    b1 = [0.0] * hidden
    w2 = [rng.gauss(0, 0.5) for _ in range(hidden)]
    b2 = 0.0

    def forward(x):
        h = [math.tanh(sum(a * c for a, c in zip(row, x)) + bb) for row, bb in zip(w1, b1)]
        return h, _sigmoid(sum(a * c for a, c in zip(w2, h)) + b2)

    loss = 0.0
    for epoch in range(1, epochs + 1):
        loss = 0.0
        order = list(range(len(x_tr)))
        rng.shuffle(order)
        for i in order:
            x, y = x_tr[i], y_tr[i]
            h, p = forward(x)
            loss -= math.log(max(1e-12, p if y else 1 - p))
            d_out = p - y
            for j in range(hidden):
                d_h = d_out * w2[j] * (1 - h[j] ** 2)
                w2[j] -= lr * d_out * h[j]
                for k in range(N_FEATURES):
                    w1[j][k] -= lr * d_h * x[k]
                b1[j] -= lr * d_h
            b2 -= lr * d_out
        _emit(epoch, loss=loss / len(x_tr))
    acc = sum((forward(x)[1] > 0.5) == bool(y) for x, y in zip(x_te, y_te)) / len(y_te)
    return _finish({"kind": "mlp", "w1": w1, "b1": b1, "w2": w2, "b2": b2},
                   {"accuracy": acc, "loss": loss / len(x_tr)})


def evaluate(spec: dict[str, Any]) -> int:
    """Score a parent's trained model (its model.json, found through $FLEET_AFTER_DIRS) on a fresh split."""
    parents = json.loads(os.environ.get("FLEET_AFTER_DIRS") or "{}")
    if len(parents) != 1:
        raise SystemExit(f"evaluate needs exactly one parent in after, got {sorted(parents)}")
    (parent, directory), = parents.items()
    with open(os.path.join(directory, "model.json")) as fh:
        model = json.load(fh)
    xs, ys = _dataset(int(spec.get("seed", 0)) + 1000, n=800)
    if model["kind"] == "logreg":
        predict = lambda x: _sigmoid(sum(a * c for a, c in zip(model["w"], x)) + model["b"])  # noqa: E731
    else:
        def predict(x):
            h = [math.tanh(sum(a * c for a, c in zip(row, x)) + bb) for row, bb in zip(model["w1"], model["b1"])]
            return _sigmoid(sum(a * c for a, c in zip(model["w2"], h)) + model["b2"])
    acc = sum((predict(x) > 0.5) == bool(y) for x, y in zip(xs, ys)) / len(ys)
    _emit(1, accuracy=acc)
    return _finish({"kind": "eval", "of": parent}, {"accuracy": acc})
