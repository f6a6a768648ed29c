"""Datasets for training and search: CIFAR-10 (npz or official python batches), ImageFolder, splits and subsets.

Images travel as ``uint8`` tensors and become normalised floats on the training device in :class:`BatchTransform`,
so augmentation is cheap, identical on CPU and GPU, and a pure function of ``(seed, epoch, sample index)``: a run
resumed mid-epoch, or sharded over N processes, sees exactly the same augmented images as an uninterrupted single
process. (ImageFolder's per-sample RandomResizedCrop runs in loader workers and is only seeded per epoch.)

Where the data comes from: an explicit path (``--data``), else the ``EDGENAS_DATA`` environment variable; the word
``sample`` selects the small class-balanced CIFAR-10 sample shipped inside the package (2,000 train + 500 test
images, provenance in ``train/assets/README.md``). Nothing else is read implicitly.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from edgenas.errors import DatasetError, DatasetNotFoundError

ENV_VAR = "EDGENAS_DATA"
SAMPLE = "sample"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ArrayDataset(Dataset):
    """Images in memory as ``uint8`` ``N x H x W x C`` with integer labels; items are ``(CHW uint8, label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
            raise DatasetError(f"expected uint8 N x H x W x C images with N labels, got {images.shape} {images.dtype}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.images[index]).permute(2, 0, 1), int(self.labels[index])


class IndexedDataset(Dataset):
    """Wraps a dataset (optionally a subset of it) so that items are ``(image, label, index in the wrapped set)``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dataset) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        index = int(i if self.indices is None else self.indices[i])
        image, label = self.dataset[index]
        return image, label, index


@dataclass
class ImageData:
    """A dataset ready for the trainer.

    Attributes:
        name: ``cifar10``, ``cifar10-sample`` or ``imagefolder``.
        train, test: datasets whose items are ``(uint8 CHW tensor, label)``.
        train_labels, test_labels: labels as arrays (for splits and balanced subsets).
        classes: class names, index = label.
        image_size: side of the images the datasets yield (px).
        mean, std: per-channel normalisation (0..1 scale).
        crop_padding: padding of the batch-level random crop (px; 0 = none).
        flip: whether the batch-level augmentation flips horizontally.
        source: where the data was read from (for the run record).
    """

    name: str
    train: Dataset
    test: Dataset
    train_labels: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    flip: bool = True
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the run record."""
        return {
            "name": self.name,
            "source": self.source,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            **self.extra,
        }


# ----- locating data ------------------------------------------------------------------------------------------------
def resolve_data_root(path: str | os.PathLike[str] | None) -> str | Path:
    """The dataset location: ``path`` if given, else ``$EDGENAS_DATA``; returns ``"sample"`` for the shipped sample.

    Raises:
        DatasetNotFoundError: neither is given, or the folder does not exist.
    """
    value = str(path) if path is not None else os.environ.get(ENV_VAR, "")
    if not value:
        raise DatasetNotFoundError(
            f"no dataset location: pass --data DIR or set {ENV_VAR} (or use --data {SAMPLE} for the small CIFAR-10 "
            "sample shipped with edgenas)"
        )
    if value == SAMPLE:
        return SAMPLE
    root = Path(value).expanduser()
    if not root.is_dir():
        origin = "--data" if path is not None else ENV_VAR
        problem = "is a file; give the folder that holds it" if root.exists() else "does not exist"
        raise DatasetNotFoundError(f"dataset folder {root} (from {origin}) {problem}")
    return root


def find_cifar10(root: Path) -> Path | None:
    """The CIFAR-10 source under ``root``: ``cifar10.npz``, or a folder with the official python batches."""
    for candidate in (root / "cifar10.npz", root / "cifar-10-batches-py", root):
        if candidate.suffix == ".npz" and candidate.is_file():
            return candidate
        if candidate.is_dir() and (candidate / "data_batch_1").is_file() and (candidate / "test_batch").is_file():
            return candidate
    return None


def find_image_folder(root: Path) -> tuple[Path, Path] | None:
    """``(train, eval)`` folders of an ImageNet-style layout under ``root`` (``train/`` and ``val/`` or ``test/``)."""
    train = root / "train"
    for name in ("val", "test"):
        if train.is_dir() and (root / name).is_dir():
            return train, root / name
    return None


# ----- CIFAR-10 -----------------------------------------------------------------------------------------------------
def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            arrays["classes"] = z["classes"] if "classes" in z.files else np.array([str(i) for i in range(10)])
    except KeyError as exc:
        raise DatasetError(f"{path}: missing array {exc}; expected x_train, y_train, x_test, y_test") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the archive ({exc})") from exc
    return arrays


def _read_python_batches(folder: Path) -> dict[str, np.ndarray]:
    """The official CIFAR-10 python batches (pickled dicts; the format the dataset is distributed in)."""

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            with (folder / name).open("rb") as f:
                batch = pickle.load(f, encoding="bytes")  # the official distribution format
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return np.ascontiguousarray(data), np.asarray(batch[b"labels"], dtype=np.int64)
        except (OSError, KeyError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DatasetError(f"{folder / name}: not a CIFAR-10 python batch ({exc})") from exc

    parts = [read(f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    x_test, y_test = read("test_batch")
    classes = np.array([str(i) for i in range(10)])
    meta = folder / "batches.meta"
    if meta.is_file():
        with meta.open("rb") as f:
            names = pickle.load(f, encoding="bytes").get(b"label_names")
        if names:
            classes = np.array([n.decode() for n in names])
    return {
        "x_train": np.concatenate([p[0] for p in parts]),
        "y_train": np.concatenate([p[1] for p in parts]),
        "x_test": x_test,
        "y_test": y_test,
        "classes": classes,
    }


def load_cifar10(path: str | os.PathLike[str] | None = None, *, download: bool = False) -> ImageData:
    """CIFAR-10 from ``path`` (or ``$EDGENAS_DATA``): ``cifar10.npz`` or the official python batches.

    Args:
        path: a folder holding ``cifar10.npz``, ``cifar-10-batches-py/`` or the batches themselves; ``"sample"``
            for the shipped sample.
        download: when nothing is found, download the official batches into the folder with torchvision (needs a
            network connection).

    Raises:
        DatasetNotFoundError: no location given or nothing found there.
        DatasetError: a file exists but is not CIFAR-10.
    """
    root = resolve_data_root(path)
    if root == SAMPLE:
        with resources.as_file(resources.files("edgenas.train").joinpath("assets/cifar10_sample.npz")) as sample:
            arrays = _read_npz(sample)
        name, source = "cifar10-sample", "edgenas package sample"
    else:
        assert isinstance(root, Path)
        found = find_cifar10(root)
        if found is None and download:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            found = find_cifar10(root)
        if found is None:
            raise DatasetNotFoundError(
                f"no CIFAR-10 in {root}: expected cifar10.npz or cifar-10-batches-py/ (give the folder with --data or "
                f"{ENV_VAR}; --download fetches the official batches when online)"
            )
        arrays = _read_npz(found) if found.suffix == ".npz" else _read_python_batches(found)
        name, source = "cifar10", str(found)
    return ImageData(
        name=name,
        train=ArrayDataset(arrays["x_train"], arrays["y_train"]),
        test=ArrayDataset(arrays["x_test"], arrays["y_test"]),
        train_labels=np.asarray(arrays["y_train"], dtype=np.int64),
        test_labels=np.asarray(arrays["y_test"], dtype=np.int64),
        classes=[str(c) for c in arrays["classes"]],
        image_size=int(arrays["x_train"].shape[1]),
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        crop_padding=4,
        flip=True,
        source=source,
    )


# ----- ImageFolder --------------------------------------------------------------------------------------------------
def load_image_folder(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 224,
    num_classes: int | None = None,
    class_seed: int = 0,
) -> ImageData:
    """An ImageNet-style folder (``train/<class>/*``, ``val/<class>/*``) with the standard transforms.

    Training: RandomResizedCrop(``image_size``) per sample (in the loader workers), flip and normalisation per batch.
    Evaluation: resize the short side to ``image_size / 0.875`` and center-crop ``image_size``.

    Args:
        path: the folder holding ``train/`` and ``val/`` (or ``test/``); default ``$EDGENAS_DATA``.
        image_size: side of the crops (px).
        num_classes: keep this many classes drawn at random (the thesis searches on 100 ImageNet classes); all when
            None. Labels are renumbered 0..num_classes-1 in sorted class-name order.
        class_seed: seed of the class draw.
    """
    import torchvision
    from torchvision.transforms import v2

    root = resolve_data_root(path)
    folders = find_image_folder(Path(root)) if root != SAMPLE else None
    if folders is None:
        raise DatasetNotFoundError(
            f"no ImageFolder layout in {root}: expected train/ and val/ (or test/) class folders"
        )
    train_tf = v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.PILToTensor()])
    eval_tf = v2.Compose(
        [v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size), v2.PILToTensor()]
    )
    train = torchvision.datasets.ImageFolder(str(folders[0]), transform=train_tf)
    test = torchvision.datasets.ImageFolder(str(folders[1]), transform=eval_tf)
    if train.classes != test.classes:
        raise DatasetError(f"{folders[0]} and {folders[1]} hold different class folders")
    classes = list(train.classes)
    if num_classes is not None:
        if not 0 < num_classes <= len(classes):
            raise DatasetError(f"--classes {num_classes}: the folder has {len(classes)} classes")
        rng = np.random.default_rng(class_seed)
        keep = sorted(rng.choice(len(classes), size=num_classes, replace=False).tolist())
        remap = {old: new for new, old in enumerate(keep)}
        for ds in (train, test):
            ds.samples = [(p, remap[t]) for p, t in ds.samples if t in remap]
            ds.imgs = ds.samples
            ds.targets = [t for _, t in ds.samples]
        classes = [classes[i] for i in keep]
    return ImageData(
        name="imagefolder",
        train=train,
        test=test,
        train_labels=np.asarray(train.targets, dtype=np.int64),
        test_labels=np.asarray(test.targets, dtype=np.int64),
        classes=classes,
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_padding=0,
        flip=True,
        source=str(root),
        extra={"class_seed": class_seed} if num_classes is not None else {},
    )


def load_dataset(
    path: str | os.PathLike[str] | None = None,
    *,
    kind: str = "auto",
    image_size: int | None = None,
    num_classes: int | None = None,
    class_seed: int = 0,
    download: bool = False,
) -> ImageData:
    """Load ``kind`` (``cifar10``, ``imagefolder`` or ``auto``: whatever the folder holds) from ``path``.

    Raises:
        DatasetNotFoundError: nothing usable at the location; the message says what was looked for.
    """
    if kind not in ("auto", "cifar10", "imagefolder"):
        raise DatasetError(f"unknown dataset kind {kind!r}; use auto, cifar10 or imagefolder")
    root = resolve_data_root(path)
    if kind == "cifar10" or root == SAMPLE or (kind == "auto" and find_cifar10(Path(root)) is not None):
        return load_cifar10(root, download=download)
    if kind == "imagefolder" or find_image_folder(Path(root)) is not None:
        return load_image_folder(root, image_size=image_size or 224, num_classes=num_classes, class_seed=class_seed)
    if download:
        return load_cifar10(root, download=True)
    raise DatasetNotFoundError(
        f"no dataset in {root}: expected cifar10.npz, cifar-10-batches-py/, or train/ + val/ class folders"
    )


# ----- splits and subsets -------------------------------------------------------------------------------------------
def stratified_split(labels: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train and validation parts with the same class proportions, deterministically.

    Returns:
        Sorted ``(train_indices, val_indices)``; each class contributes ``round(count * val_fraction)`` to validation.
    """
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(len(members) * val_fraction)
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))


def balanced_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``size`` samples with (as nearly as possible) the same count per class.

    Raises:
        DatasetError: ``size`` exceeds the data, or a class has too few samples for its share.
    """
    classes = np.unique(labels)
    if not 0 < size <= len(labels):
        raise DatasetError(f"subset size {size} must be in 1..{len(labels)}")
    base, extra = divmod(size, len(classes))
    rng = np.random.default_rng(seed)
    picks = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        want = base + (1 if i < extra else 0)
        if want > len(members):
            raise DatasetError(f"class {c} has {len(members)} samples, a balanced subset of {size} needs {want}")
        picks.append(rng.choice(members, size=want, replace=False))
    return np.sort(np.concatenate(picks))


# ----- batch-level preprocessing ------------------------------------------------------------------------------------
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A strong 64-bit integer hash (SplitMix64's finaliser), vectorised; wraps modulo 2**64 by design."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def sample_hash(seed: int, epoch: int, indices: torch.Tensor) -> np.ndarray:
    """Per-sample 64-bit random words that depend only on (seed, epoch, sample index)."""
    idx = indices.cpu().numpy().astype(np.uint64)
    key = _splitmix64(np.array([seed * 1_000_003 + epoch], dtype=np.uint64))
    return _splitmix64(idx ^ key)


class BatchTransform:
    """``uint8`` batch -> normalised float batch on the device, with optional random crop and flip.

    Args:
        mean, std: per-channel normalisation (0..1 scale).
        augment: apply the random crop (zero padding ``crop_padding``) and horizontal flip.
        crop_padding: padding of the random crop (px).
        flip: allow horizontal flips when augmenting.
        size: resize to ``size x size`` (bilinear) when the images have another size.
        channels_last: return a channels-last tensor.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        augment: bool,
        crop_padding: int = 0,
        flip: bool = True,
        size: int | None = None,
        channels_last: bool = False,
    ) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augment, self.crop_padding, self.flip = augment, crop_padding, flip
        self.size, self.channels_last = size, channels_last

    def __call__(self, images: torch.Tensor, indices: torch.Tensor, seed: int = 0, epoch: int = 0) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.augment and (self.crop_padding or self.flip):
            words = sample_hash(seed, epoch, indices)
            if self.crop_padding:
                p = self.crop_padding
                span = np.uint64(2 * p + 1)
                dx = torch.from_numpy((words % span).astype(np.int64))
                dy = torch.from_numpy(((words >> np.uint64(16)) % span).astype(np.int64))
                padded = F.pad(x, (p, p, p, p))
                h, w = x.shape[-2:]
                x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(x))])
            if self.flip:
                flips = torch.from_numpy(((words >> np.uint64(32)) & np.uint64(1)).astype(bool)).to(x.device)
                x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class FixedOrderBatches:
    """The same preprocessed batches, in the same order, every time it is iterated (no shuffle, no augmentation).

    Training-free proxies (the BTE proxy) need this: a loss trajectory is comparable between architectures only if
    every architecture sees identical batches.

    Args:
        data: the dataset.
        batch_size: images per batch (the last batch may be smaller).
        split: ``train`` or ``test``.
        indices: restrict to these samples (e.g. a :func:`balanced_subset`), in this order.
        size: resize to ``size x size`` when the images have another size.
        channels_last: yield channels-last tensors.
        device: where the batches are put.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        *,
        split: str = "train",
        indices: Sequence[int] | None = None,
        size: int | None = None,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        if split not in ("train", "test"):
            raise DatasetError(f"split must be train or test, got {split!r}")
        self.dataset = IndexedDataset(data.train if split == "train" else data.test, indices)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.transform = BatchTransform(data.mean, data.std, augment=False, size=size, channels_last=channels_last)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
        for images, labels, indices in loader:
            yield self.transform(images.to(self.device), indices), labels.to(self.device)
