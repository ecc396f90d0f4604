"""Data that needs no download: scikit-learn's bundled digits, split the same way for every model.

1,797 8×8 grey images of the digits 0-9, scaled to [0, 1] and shaped (N, 1, 8, 8) (channels first,
as torch expects; the Keras models permute to channels last inside the model, so both frameworks
and every converted model take the same array).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from issuemine.errors import IssuemineError


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_test.shape[1:])


def digits(seed: int = 0, test_size: float = 0.3) -> Split:
    """The seeded, stratified train/test split of the digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


def load_inputs(path: Path, input_shape: tuple[int, ...]) -> Split:
    """A user's test data: an ``.npz`` with ``x`` (inputs) and optionally ``y`` (class labels)."""
    try:
        with np.load(path, allow_pickle=False) as found:
            arrays = {k: found[k] for k in found.files}
    except (OSError, ValueError) as exc:
        raise IssuemineError(f"{path}: not a readable .npz file ({exc})") from None
    if "x" not in arrays:
        raise IssuemineError(f"{path}: no array named 'x' (found: {', '.join(arrays) or 'none'})")
    x = arrays["x"].astype(np.float32)
    if tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise IssuemineError(
            f"{path}: inputs of shape {tuple(x.shape[1:])} per example, but --input-shape says {tuple(input_shape[1:])}"
        )
    y = arrays.get("y")
    if y is not None and len(y) != len(x):
        raise IssuemineError(f"{path}: {len(x)} inputs but {len(y)} labels")
    return Split(x[:0], np.zeros(0, np.int64), x, None if y is None else y.astype(np.int64))
