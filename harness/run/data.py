"""Datasets: load images and labels, pick the source or target classes, split train/validation/test.

The split is stratified and seeded by ``dataset.split_seed`` alone, so every run of a sweep (every
optimizer, every seed) trains and is tested on the same examples: differences between cells come from
the factors, not from the data they happened to draw.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config.folders import IMAGE_SUFFIXES, class_folders, image_files  # noqa: F401
from harness.config.schema import DatasetConfig
from harness.result_files import write_json_atomic
from harness.run_key import content_key
from harness.stage_records import FolderFacts


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, H, W, C) and labels ``y`` (N,) as int32 in [0, classes). Images are either
    float32 in [0, 1] or uint8 in [0, 255]: 8-bit data stays 8-bit (a quarter of the memory: CIFAR-10
    takes 184 MB, not 737 MB) and the model scales it, batch by batch (``Task.pixel_max``). A streamed
    folder's ``x`` is ``DiskRows``: its images stay on disk and are read batch by batch."""

    x: np.ndarray | DiskRows
    y: np.ndarray


class DiskRows:
    """Rows ``index`` of an (N, H, W, C) array kept on disk (``array``: a read-only ``np.memmap`` of a
    decoded folder), standing in for a ``Split``'s in-memory images: it has their ``shape`` and
    ``dtype``, and is read only batch by batch (``rows``; ``harness.run.streaming``)."""

    def __init__(self, array: np.ndarray, index: np.ndarray) -> None:
        self.array, self.index = array, np.asarray(index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, which: np.ndarray) -> DiskRows:
        """The rows at positions ``which`` of this one, still on disk."""
        return DiskRows(self.array, self.index[which])

    def rows(self, which: np.ndarray) -> np.ndarray:
        """The rows at positions ``which``, read into memory."""
        return np.asarray(self.array[self.index[which]])


def take(x: np.ndarray | DiskRows, which: np.ndarray) -> np.ndarray | DiskRows:
    """The examples at positions ``which`` of ``x``: copied for an array, still on disk for ``DiskRows``."""
    return x.subset(which) if isinstance(x, DiskRows) else x[which]


@dataclass(frozen=True)
class Task:
    """A task: its splits and the original labels its classes stand for (none: a regression). A user's
    already-split data may come as datasets of batches (``Split.y`` is then ``None``): its input shape and
    training examples are then given (``given_shape``, ``given_examples``, counted from the data)."""

    train: Split
    val: Split
    test: Split
    classes: tuple[int, ...]
    given_shape: tuple[int, ...] | None = None
    given_examples: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.given_shape if self.given_shape is not None else tuple(self.train.x.shape[1:])

    @property
    def train_examples(self) -> int:
        return self.given_examples if self.given_examples is not None else len(self.train.y)

    @property
    def pixel_max(self) -> float:
        """The value of a white pixel: 255 for 8-bit images, 1 for float ones (and for data of batches)."""
        return 255.0 if getattr(self.train.x, "dtype", None) == np.uint8 else 1.0


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: 1,797 8x8 grey images with 17 levels (0-16), no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target


def eight_bit(x: np.ndarray) -> np.ndarray:
    """Integer images as uint8 (values checked to fit); float images as float32."""
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"integer images must lie in [0, 255]; found values in [{x.min()}, {x.max()}]")
        return x.astype("uint8", copy=False)
    return np.asarray(x, dtype="float32")


def load_npz_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``.npz`` file with ``x`` (N, H, W[, C]) and ``y`` (N,), or Keras' layout ``x_train``,
    ``y_train``, ``x_test``, ``y_test`` (joined: the harness makes its own splits). Integer images
    are 8-bit (0-255), float images in [0, 1]."""
    try:
        archive = np.load(path)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    with archive as data:
        if {"x_train", "y_train", "x_test", "y_test"} <= set(data.files):
            x = np.concatenate([data["x_train"], data["x_test"]])
            y = np.concatenate([data["y_train"], data["y_test"]])
        elif {"x", "y"} <= set(data.files):
            x, y = data["x"], data["y"]
        else:
            raise ValueError(f"{path}: need arrays x and y (or x_train, y_train, x_test, y_test); found {data.files}")
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} examples but y has {len(y)}")
    try:
        return eight_bit(x), y
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _idx_gz(path: Path, offset: int) -> np.ndarray:
    """The bytes of a gzipped IDX file (MNIST's format) after its header."""
    with gzip.open(path, "rb") as file:
        return np.frombuffer(file.read(), np.uint8, offset=offset)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file (a pickled dict: ``data`` (N, 3072) uint8, ``labels``) as (N, 32, 32, 3)."""
    with open(path, "rb") as file:
        batch = pickle.load(file, encoding="bytes")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    x = np.asarray(batch["data"], dtype="uint8").reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch["labels"])


def load_keras_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Keras dataset ``name`` (``mnist``, ``fashion_mnist``, ``cifar10``), train and test joined (the
    harness makes its own splits), read from Keras' cache in Keras' own formats. Files not cached are
    downloaded by Keras' own loader (the Hydra process has checked that a download can start)."""
    from harness import keras_cache

    files = keras_cache.dataset_files(name)
    if not all(path.is_file() for path in files):
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
        return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]).reshape(-1)
    if name == "mnist":
        return load_npz_arrays(files[0])
    if name == "fashion_mnist":
        labels = [_idx_gz(files[0], 8), _idx_gz(files[2], 8)]
        images = [_idx_gz(files[1], 16), _idx_gz(files[3], 16)]
        x = np.concatenate([i.reshape(len(lb), 28, 28) for i, lb in zip(images, labels, strict=True)])
        return x, np.concatenate(labels)
    batches = [_cifar_batch(path) for path in files]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


FOLDER_MAX_SIDE = 256
"""Without ``image_size``, a folder's images keep the size most of them have, scaled down (aspect kept)
to this on their longer side: photos from a phone would otherwise take 36 MB each in memory."""


def common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The (width, height) most of ``sizes`` have (the smaller on a tie), scaled down to
    ``FOLDER_MAX_SIDE`` on its longer side."""
    values, counts = np.unique(np.array(sizes), axis=0, return_counts=True)
    width, height = (int(v) for v in values[np.argmax(counts)])
    scale = min(1.0, FOLDER_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


EXIF_ORIENTATION = 0x0112
"""The EXIF tag that says how a photo is shown; its values 5-8 turn the stored image by 90 degrees."""


@contextmanager
def opened_image(path: Path) -> Iterator[Any]:
    """``PIL.Image.open(path)``, with a file PIL cannot read (or decode) named in one ``ValueError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            yield image
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def shown_size(image: Any) -> tuple[int, int]:
    """(width, height) of an opened, not yet decoded image as it is shown, from its header alone: an EXIF
    orientation of 5-8 turns it by 90 degrees. (EXIF that a PNG stores after its pixels is not seen here,
    as Pillow would have to decode the image to find it; the image is still resized to fit.)"""
    from PIL import Image

    width, height = image.size
    exif = Image.Exif()
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    return (height, width) if exif.get(EXIF_ORIENTATION) in (5, 6, 7, 8) else (width, height)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give without swapping (Linux' ``MemAvailable``); ``None``
    where that is not known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def in_megabytes(size: int) -> str:
    """``1,234 MB``: bytes for a person to read (a decimal megabyte is 10^6 bytes)."""
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e6:.2f} MB"


def check_fits_in_memory(count: int, size: tuple[int, int], root: Path) -> None:
    """Refuse, in one line, to hold in memory a folder whose decoded images alone would not fit in the
    memory available (the OOM killer would otherwise end the run with no word of why): before decoding
    into memory, or before reading the decoded copy into it (``load=memory``)."""
    needed, free = count * size[0] * size[1] * 3, available_memory()
    if free is not None and needed > free:
        smaller = max(1, int(max(size) * (free / needed / 2) ** 0.5))
        raise ValueError(f"dataset.path: the {count:,} images of {root} take {in_megabytes(needed)} decoded at "
                         f"{size[0]}x{size[1]}, more than the {in_megabytes(free)} of memory available; use "
                         f"dataset.load=stream (batches read from disk), dataset.limit=N or a smaller "
                         f"dataset.image_size (e.g. {smaller})")


def folder_images(cfg: DatasetConfig) -> tuple[list[Path], np.ndarray]:
    """The image files of a ``folder`` dataset, class folder by class folder, and their labels (N,)
    (class-folder index); at most ``limit`` of them, drawn as ``limit_examples`` draws."""
    paths, labels = [], []
    for label, folder in enumerate(class_folders(cfg)):
        found = image_files(folder)
        if not found:
            raise ValueError(f"dataset.path: class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        paths += found
        labels += [label] * len(found)
    y = np.asarray(labels)
    if (chosen := limited_indices(y, cfg.limit, cfg.split_seed)) is not None:
        paths, y = [paths[i] for i in chosen], y[chosen]
    return paths, y


DECODE_REPORT_S = 1.0
"""How often a long decoding says how far it got (``decode_images``' ``on_decoded``)."""

DECODING_VERSION = 1
"""Part of a decoded folder's cache key: raise it when ``decode_images`` changes what it makes."""


def decoded_folder_key(paths: list[Path], image_size: int | None) -> str:
    """What determines a folder's decoded array: each file (absolute path, size, modification time), the
    size asked for, the decoding (``DECODING_VERSION``, ``FOLDER_MAX_SIDE``) and Pillow's version."""
    import PIL

    files = [(str(path.resolve()), stat.st_size, stat.st_mtime_ns) for path in paths for stat in [path.stat()]]
    basis = {"files": files, "image_size": image_size, "max_side": FOLDER_MAX_SIDE, "decoding": DECODING_VERSION,
             "pillow": PIL.__version__}
    return content_key(basis, sort_keys=False, compact=False)


class UnreadableImages(ValueError):
    """Images of a folder that cannot be read or decoded, named in one line with the choice the user has."""

    def __init__(self, unreadable: dict[str, str]) -> None:
        self.unreadable = unreadable
        named = "; ".join(f"{path} ({why})" for path, why in list(unreadable.items())[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        count = f"{len(unreadable)} image{'s' if len(unreadable) != 1 else ''}"
        super().__init__(f"dataset.path: {count} cannot be read: {named}{more}; fix or remove them, or set "
                         "dataset.skip_unreadable=true to train without them")


def decode_images(paths: list[Path], image_size: int | None, root: Path, out: Path | None = None,
                  on_decoded: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict[str, str]]:
    """``paths`` decoded, turned upright (EXIF orientation), made RGB (grey and palette images too) and
    resized (bilinear) to ``image_size`` square, or, when ``None``, to ``common_size`` of their shown
    sizes (read from the headers); as uint8 (N, H, W, 3), in memory or, given ``out``, into that
    ``.npy`` file (through a memory map: a folder larger than memory can be decoded). Also returns the
    images that could not be read or decoded (a zero-byte file, a truncated JPEG): path -> why; their
    rows are left black, for ``load_image_folder`` to refuse or leave out.

    One at a time into one array: memory peaks at the array (checked to fit, if in memory) plus one image,
    however big the photos are; JPEGs are decoded at a reduced scale (1/2 to 1/8, libjpeg's own) where
    they are that much bigger than the size they are resized to. ``on_decoded(done, total)`` is told how
    far it got, at most every ``DECODE_REPORT_S`` seconds (the sweep's live line shows it)."""
    from PIL import Image, ImageOps

    unreadable: dict[str, str] = {}
    if image_size:
        size = (image_size, image_size)
    else:
        sizes = []
        for path in paths:
            try:
                with opened_image(path) as image:
                    sizes.append(shown_size(image))
            except ValueError as err:
                unreadable[str(path)] = str(err.__cause__ or err)
        size = common_size(sizes) if sizes else (1, 1)
    shape = (len(paths), size[1], size[0], 3)
    if out is None:
        check_fits_in_memory(len(paths), size, root)
        x = np.zeros(shape, dtype="uint8")
    else:
        x = np.lib.format.open_memmap(out, mode="w+", dtype="uint8", shape=shape)
    reported = time.monotonic()
    for i, path in enumerate(paths):
        if on_decoded is not None and time.monotonic() - reported >= DECODE_REPORT_S:
            on_decoded(i, len(paths))
            reported = time.monotonic()
        if str(path) in unreadable:
            continue
        try:
            with opened_image(path) as image:
                if image.format == "JPEG":  # before decoding: libjpeg then decodes at 1/2, 1/4 or 1/8 scale
                    turned = shown_size(image) != image.size
                    image.draft("RGB", size[::-1] if turned else size)
                upright = ImageOps.exif_transpose(image).convert("RGB")
                x[i] = np.asarray(upright if upright.size == size else upright.resize(size, Image.BILINEAR))
        except ValueError as err:
            unreadable[str(path)] = str(err.__cause__ or err)
    if out is not None:
        x.flush()
    return x, unreadable


def _host() -> str:
    return platform.node().replace(".", "-") or "host"


def remove_abandoned_partials(cached: Path) -> None:
    """Delete the half-written copies of ``cached`` that a run on this host left when it was killed while
    decoding (its process is gone); a cluster's shared cache keeps other hosts' and live runs' copies."""
    for partial in cached.parent.glob(f".{cached.stem}.{_host()}.*.npy"):
        pid = partial.name.split(".")[3]  # .<key>.<host>.<pid>.<ns>.npy
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            partial.unlink(missing_ok=True)
        except (ValueError, PermissionError):  # not a pid of ours, or another user's live process
            pass


def unreadable_list(cached: Path) -> Path:
    """Where the images of the decoded copy ``cached`` that could not be read are listed (JSON)."""
    return cached.with_suffix(".unreadable.json")


def load_image_folder(cfg: DatasetConfig, cache_dir: Path | None = None, facts: FolderFacts | None = None,
                      on_decoded: Callable[[int, int], None] | None = None) -> tuple[np.ndarray | DiskRows, np.ndarray]:
    """The images of every class folder (``folder_images``: a ``limit`` applies before any is decoded),
    as ``decode_images`` makes them, and their labels.

    With a ``cache_dir``, a folder is decoded once: into ``cache_dir/folders/<decoded_folder_key>.npy``,
    read back by every later run of the same files at the same size (a file added, removed or changed
    makes a new key). From there, ``load`` decides: ``memory`` reads it into memory (one clear line if it
    does not fit), ``stream`` leaves it on disk (``DiskRows``, read batch by batch while training),
    ``auto`` streams only where it would take more than half the memory available. ``facts`` gets
    ``data_cache_hit``, ``data_streamed`` and ``skipped_images``. Without a ``cache_dir`` the images are
    decoded into memory. ``on_decoded``: see ``decode_images``.

    Images that cannot be read are found once, while decoding, and listed beside the decoded copy, so
    that later runs of a sweep refuse at once instead of decoding again: ``UnreadableImages`` names them,
    unless ``skip_unreadable`` leaves them out (listed in ``facts``)."""
    paths, y = folder_images(cfg)
    root = Path(cfg.path).expanduser()
    if cache_dir is None:
        x, unreadable = decode_images(paths, cfg.image_size, root, on_decoded=on_decoded)
        keep = _readable(paths, unreadable, cfg, facts)
        return (x if keep is None else x[keep]), (y if keep is None else y[keep])
    cached = Path(cache_dir) / "folders" / f"{decoded_folder_key(paths, cfg.image_size)}.npy"
    hit = cached.is_file()
    if not hit:
        cached.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_partials(cached)
        partial = cached.with_name(f".{cached.stem}.{_host()}.{os.getpid()}.{time.time_ns()}.npy")  # then renamed
        _, unreadable = decode_images(paths, cfg.image_size, root, out=partial, on_decoded=on_decoded)
        if unreadable:  # before the copy appears: a run that finds the copy finds its list too
            write_json_atomic(unreadable_list(cached), unreadable)
        partial.replace(cached)
    if facts is not None:
        facts.data_cache_hit = hit  # also in a result that fails below: it shows what was decoded, and when
    listed = unreadable_list(cached)
    keep = _readable(paths, json.loads(listed.read_text()) if listed.is_file() else {}, cfg, facts)
    stored = np.load(cached, mmap_mode="r")
    rows = np.arange(len(stored)) if keep is None else keep
    free = available_memory()
    stream = cfg.load == "stream" or (cfg.load == "auto" and free is not None and stored.nbytes > free / 2)
    if facts is not None:
        facts.data_streamed = stream
    y = y if keep is None else y[keep]
    if stream:
        return DiskRows(stored, rows), y
    check_fits_in_memory(len(rows), (stored.shape[2], stored.shape[1]), root)
    return (np.array(stored) if keep is None else np.asarray(stored[rows])), y


def _readable(paths: list[Path], unreadable: dict[str, str], cfg: DatasetConfig,
              facts: FolderFacts | None) -> np.ndarray | None:
    """The indices of ``paths`` to train on (``None``: all), or ``UnreadableImages`` where some cannot be
    read and ``skip_unreadable`` is off; skipped files go into ``facts.skipped_images``."""
    if not unreadable:
        return None
    if not cfg.skip_unreadable:
        raise UnreadableImages(unreadable)
    if facts is not None:
        facts.skipped_images = sorted(unreadable)
    return np.array([i for i, path in enumerate(paths) if str(path) not in unreadable], dtype=int)


def limited_indices(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray | None:
    """Which of the examples labelled ``y`` (N,) to keep under ``limit``: at most ``limit`` indices, drawn
    stratified (every class keeps its share) with ``seed``; ``None`` where there is no cap to apply."""
    if limit is None or limit >= len(y):
        return None
    from sklearn.model_selection import train_test_split  # here: the Hydra process imports this module too

    chosen, _ = train_test_split(np.arange(len(y)), train_size=limit, stratify=y, random_state=seed)
    return chosen


def limit_examples(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` examples, drawn stratified (every class keeps its share) with ``seed``."""
    chosen = limited_indices(y, limit, seed)
    return (x, y) if chosen is None else (x[chosen], y[chosen])


def download(url: str, sha256: str | None, cache_dir: Path) -> Path:
    """The file at ``url``, downloaded once into ``cache_dir/datasets`` by Keras' ``get_file``, which
    checks ``sha256`` and downloads again when the cached copy does not match. Any scheme urllib
    reads works (``https://``, ``file://``)."""
    import keras

    name = Path(url.split("?")[0]).name or "dataset.npz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(keras.utils.get_file(fname=name, origin=url, file_hash=sha256, cache_dir=str(cache_dir),
                                     cache_subdir="datasets"))


def load_arrays(cfg: DatasetConfig, cache_dir: Path, facts: FolderFacts | None = None,
                on_decoded: Callable[[int, int], None] | None = None) -> tuple[np.ndarray | DiskRows, np.ndarray]:
    """All images (N, H, W, C; uint8 or float32, see ``Split``) and labels (N,) int of the dataset that
    ``cfg`` names: the bundled digits, a Keras dataset, a folder of images, a local ``.npz`` ``path``
    or a ``url`` downloaded into ``cache_dir``; capped by ``limit``. ``facts`` (optional) gets how a
    folder was read (``FolderFacts``);
    ``on_decoded`` hears how far a folder's decoding got (``decode_images``)."""
    from harness.keras_cache import KERAS_DATASETS

    if cfg.name == "digits":
        x, y = load_digits_arrays()
    elif cfg.name in KERAS_DATASETS:
        x, y = load_keras_dataset(cfg.name)
    elif cfg.name == "folder":  # 8-bit RGB already, limited before decoding, perhaps left on disk
        return load_image_folder(cfg, cache_dir, facts, on_decoded)
    elif cfg.path:
        x, y = load_npz_arrays(cfg.path)
    elif cfg.url:
        x, y = load_npz_arrays(download(cfg.url, cfg.sha256, Path(cache_dir)))
    else:
        raise ValueError(f"dataset {cfg.name!r} has neither a path nor a url")
    x = eight_bit(np.asarray(x))
    if x.ndim == 3:
        x = x[..., None]
    return limit_examples(x, np.asarray(y).reshape(-1).astype("int64"), cfg.limit, cfg.split_seed)


def make_task(x: np.ndarray | DiskRows, y: np.ndarray, classes: list[int], cfg: DatasetConfig,
              train_size: int | None) -> Task:
    """The task of telling ``classes`` apart, split by ``cfg``'s fractions and ``split_seed``. The split
    is drawn on positions and the images taken once per split (``take``: left on disk when streamed)."""
    from sklearn.model_selection import train_test_split

    keep = np.flatnonzero(np.isin(y, classes))
    if not keep.size:
        raise ValueError(f"dataset {cfg.name!r} has no examples of classes {classes}")
    labels = np.searchsorted(np.asarray(sorted(classes)), y[keep]).astype("int32")
    seed = cfg.split_seed
    held_out = cfg.val_fraction + cfg.test_fraction
    try:
        train, rest, y_train, y_rest = train_test_split(
            keep, labels, test_size=held_out, stratify=labels, random_state=seed
        )
        val, test, y_val, y_test = train_test_split(
            rest, y_rest, test_size=cfg.test_fraction / held_out, stratify=y_rest, random_state=seed
        )
    except ValueError as err:  # scikit-learn's words are about "groups" and "test_size"
        fewest = int(np.bincount(labels).min())
        raise ValueError(f"dataset {cfg.name!r}: too few examples to split train/validation/test with every "
                         f"class in each (the smallest class has {fewest}; {held_out:.0%} held out); use more "
                         f"examples (dataset.limit) or other dataset.val_fraction/test_fraction ({err})") from err
    if train_size is not None and train_size < len(train):
        train, _, y_train, _ = train_test_split(
            train, y_train, train_size=train_size, stratify=y_train, random_state=seed
        )
    return Task(Split(take(x, train), y_train), Split(take(x, val), y_val), Split(take(x, test), y_test),
                tuple(sorted(classes)))


def target_classes(cfg: DatasetConfig, y: np.ndarray) -> list[int]:
    """The classes runs learn: ``target_classes``, or every label not used as a source class."""
    if cfg.target_classes:
        return list(cfg.target_classes)
    return sorted(set(np.unique(y).tolist()) - set(cfg.source_classes))


def load_tasks(cfg: DatasetConfig, cache_dir: Path, facts: FolderFacts | None = None,
               on_decoded: Callable[[int, int], None] | None = None) -> tuple[Task, Task | None]:
    """The target task every run trains on (``train_size`` caps its training examples) and the source
    task the transfer feature extractor is pretrained on (``source_classes``, all their examples;
    ``None`` without source classes). The data is read once for both; ``facts``, ``on_decoded``: see
    ``load_arrays``. (``dataset=custom``, the user's function's data, is ``harness.run.custom.load_task``.)"""
    x, y = load_arrays(cfg, cache_dir, facts, on_decoded)
    target = make_task(x, y, target_classes(cfg, y), cfg, cfg.train_size)
    source = make_task(x, y, list(cfg.source_classes), cfg, None) if cfg.source_classes else None
    return target, source
