"""The suite's small models, in PyTorch and in Keras: an MLP, a CNN, and a CNN with batch
normalization and dropout, trained here on the digits, seeded, in seconds.

Trained weights stay out of git: training is the reproducible step. Each framework's model is saved
in its own format (TorchScript ``.pt``, ``.keras``), which is what the size comparison and the fresh
measurement processes read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.quality.data import Split

ARCHITECTURES = ("mlp", "cnn", "cnn-bn-dropout")
FRAMEWORKS = ("torch", "keras")


@dataclass
class Trained:
    name: str  # e.g. torch-cnn
    framework: str
    architecture: str
    model: Any  # the in-memory model (a torch.nn.Module in eval mode, or a keras.Model)
    path: Path  # the framework file
    seconds: float
    epochs: int


def torch_model(architecture: str) -> Any:
    import torch.nn as nn

    if architecture == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    if architecture == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)
        )
    if architecture == "cnn-bn-dropout":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )
    raise ValueError(architecture)


def train_torch(architecture: str, data: Split, seed: int, epochs: int, out: Path) -> Trained:
    import time

    import torch

    torch.manual_seed(seed)
    start = time.perf_counter()
    model = torch_model(architecture)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), 64):
            batch = order[i : i + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    seconds = time.perf_counter() - start
    path = out / f"torch-{architecture}.pt"
    with torch.no_grad():
        torch.jit.trace(model, torch.from_numpy(data.x_test[:1])).save(str(path))
    return Trained(f"torch-{architecture}", "torch", architecture, model, path, seconds, epochs)


def keras_model(architecture: str) -> Any:
    import keras
    from keras import layers

    head = [keras.Input((1, 8, 8)), layers.Permute((2, 3, 1))]  # channels first in, channels last inside
    if architecture == "mlp":
        body = [layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10)]
    elif architecture == "cnn":
        body = [
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ]
    elif architecture == "cnn-bn-dropout":
        body = [
            layers.Conv2D(16, 3, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(10),
        ]
    else:
        raise ValueError(architecture)
    return keras.Sequential(head + body, name=f"keras_{architecture.replace('-', '_')}")


def train_keras(architecture: str, data: Split, seed: int, epochs: int, out: Path) -> Trained:
    import time

    quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = keras_model(architecture)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    seconds = time.perf_counter() - start
    path = out / f"keras-{architecture}.keras"
    model.save(path)
    return Trained(f"keras-{architecture}", "keras", architecture, model, path, seconds, epochs)


def train(framework: str, architecture: str, data: Split, seed: int, epochs: int, out: Path) -> Trained:
    out.mkdir(parents=True, exist_ok=True)
    if framework == "torch":
        return train_torch(architecture, data, seed, epochs, out)
    return train_keras(architecture, data, seed, epochs, out)


def predict(framework: str, model: Any, x: np.ndarray) -> np.ndarray:
    """Logits of the original model, in inference mode."""
    if framework == "torch":
        import torch

        with torch.inference_mode():
            return np.asarray(model(torch.from_numpy(x)).numpy())
    return np.asarray(model(x, training=False))


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter goes to stderr of every process that imports it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
