"""Regenerate src/edgenas/train/assets/cifar10_sample.npz: a class-balanced real CIFAR-10 sample for demos and tests.

Usage: python tools/make_cifar_sample.py PATH/TO/cifar10.npz [--train-per-class 200] [--test-per-class 50]

Takes, per class, the first images of that class in the archive's stored order (which is itself a seeded
shuffle, see the data folder's README), keeps their indices in the archive (``train_index``/``test_index``), and
writes the arrays LZMA-compressed so the file stays small.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("archive")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    args = parser.parse_args()
    with np.load(args.archive) as z:
        x_train, y_train, x_test, y_test, classes = z["x_train"], z["y_train"], z["x_test"], z["y_test"], z["classes"]
    tr, te = first_per_class(y_train, args.train_per_class), first_per_class(y_test, args.test_per_class)
    arrays = {
        "x_train": x_train[tr],
        "y_train": y_train[tr],
        "x_test": x_test[te],
        "y_test": y_test[te],
        "classes": classes,
        "train_index": tr.astype(np.int32),
        "test_index": te.astype(np.int32),
    }
    out = Path(__file__).resolve().parents[1] / "src/edgenas/train/assets/cifar10_sample.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            zf.writestr(f"{name}.npy", buffer.getvalue())
    print(f"wrote {out}: {len(tr)} train + {len(te)} test images, {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
