"""Loaders: both CIFAR-10 formats, the sample, splits, balanced subsets, fixed order, batch augmentation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from edgenas.errors import DatasetError, DatasetNotFoundError
from edgenas.train.data import (
    BatchTransform,
    FixedOrderBatches,
    balanced_subset,
    load_cifar10,
    load_dataset,
    load_image_folder,
    resolve_data_root,
    stratified_split,
)


def tiny_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def test_npz_format(tmp_path):
    arrays = tiny_arrays()
    np.savez(tmp_path / "cifar10.npz", **arrays, classes=np.array([f"c{i}" for i in range(10)]))
    data = load_cifar10(tmp_path)
    image, label = data.train[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert torch.equal(image, torch.from_numpy(arrays["x_train"][3]).permute(2, 0, 1)) and label == 3
    assert len(data.test) == 10 and data.classes[2] == "c2" and data.num_classes == 10


def test_python_batch_format(tmp_path):
    arrays = tiny_arrays(n_train=25)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    def dump(name, x, y):
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # the official layout: N x 3072, channel-major
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": flat, b"labels": [int(v) for v in y]}, f)

    for i in range(5):
        dump(f"data_batch_{i + 1}", arrays["x_train"][i * 5 : (i + 1) * 5], arrays["y_train"][i * 5 : (i + 1) * 5])
    dump("test_batch", arrays["x_test"], arrays["y_test"])
    data = load_cifar10(tmp_path)
    assert len(data.train) == 25
    assert np.array_equal(data.train.images, arrays["x_train"])  # HWC restored exactly
    assert np.array_equal(data.test_labels, arrays["y_test"])


def test_shipped_sample_is_real_and_class_balanced():
    data = load_cifar10("sample")
    assert (len(data.train), len(data.test)) == (2000, 500)
    assert np.bincount(data.train_labels).tolist() == [200] * 10
    assert np.bincount(data.test_labels).tolist() == [50] * 10
    assert data.classes[0] == "airplane"
    assert 100 < data.train.images.mean() < 140  # natural images, not noise or zeros


def test_missing_dataset_names_both_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGENAS_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match=r"--data DIR or set EDGENAS_DATA"):
        resolve_data_root(None)
    with pytest.raises(DatasetNotFoundError, match=r"does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"no dataset in .*cifar10.npz.*train/ \+ val/"):
        load_dataset(tmp_path)
    monkeypatch.setenv("EDGENAS_DATA", str(tmp_path / "env-nowhere"))
    with pytest.raises(DatasetNotFoundError, match=r"from EDGENAS_DATA"):
        load_cifar10()


def test_corrupt_npz(tmp_path):
    (tmp_path / "cifar10.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="cannot read"):
        load_cifar10(tmp_path)


def test_stratified_split_is_deterministic_balanced_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 500
    assert np.bincount(labels[val]).tolist() == [10] * 10
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=4)[1])


def test_balanced_subsets():
    labels = np.repeat(np.arange(10), 30)
    idx = balanced_subset(labels, 100, seed=0)
    assert np.bincount(labels[idx]).tolist() == [10] * 10 and len(np.unique(idx)) == 100
    odd = balanced_subset(labels, 103, seed=0)
    assert sorted(np.bincount(labels[odd]).tolist()) == [10] * 7 + [11] * 3
    with pytest.raises(DatasetError, match="needs"):
        balanced_subset(np.array([0, 0, 0, 1]), 4)


def test_fixed_order_batches_repeat_exactly():
    data = load_cifar10("sample")
    batches = FixedOrderBatches(data, 32, indices=balanced_subset(data.train_labels, 80, seed=1))
    first = list(batches)
    second = list(batches)
    assert len(first) == len(batches) == 3 and first[-1][0].shape[0] == 16
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert abs(float(first[0][0].mean())) < 0.5  # normalised


def test_augmentation_depends_only_on_seed_epoch_and_index():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    indices = torch.arange(100, 108)
    t = BatchTransform((0.5,) * 3, (0.25,) * 3, augment=True, crop_padding=4)
    full = t(images, indices, seed=1, epoch=2)
    halves = torch.cat([t(images[:4], indices[:4], seed=1, epoch=2), t(images[4:], indices[4:], seed=1, epoch=2)])
    assert torch.equal(full, halves)  # sharding a batch does not change any image
    assert not torch.equal(full, t(images, indices, seed=1, epoch=3))
    plain = BatchTransform((0.5,) * 3, (0.25,) * 3, augment=False)(images, indices)
    assert not torch.equal(full, plain)
    assert torch.allclose(plain, (images.float() / 255 - 0.5) / 0.25)


def test_image_folder_with_class_subset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("ant", "bee", "cat", "dog"):
            folder = tmp_path / split / c
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    data = load_image_folder(tmp_path, image_size=24, num_classes=2, class_seed=0)
    assert data.num_classes == 2 and len(data.train) == 6 and len(data.test) == 6
    assert set(data.train_labels.tolist()) == {0, 1}
    image, _ = data.test[0]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8
    assert load_dataset(tmp_path, image_size=24).name == "imagefolder"
