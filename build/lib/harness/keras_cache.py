"""Where Keras keeps what it downloads (ImageNet weights, its datasets), named without importing Keras.

Both sides of the harness need these names: the Hydra process, to say *before any training* that a
file is missing and cannot be downloaded (one line naming the file and where to put it), and the run
process, to read the cached file. The names and URLs are Keras' own (``keras/src/applications/*.py``,
``keras/src/datasets/*.py``, Keras 3.x); ``keras_home`` follows ``keras.src.utils.file_utils.get_file``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
"""Input sizes MobileNetV2 has ImageNet weights for; Keras loads the 224 ones for any other size."""


@dataclass(frozen=True)
class Application:
    """A ``keras.applications`` backbone: its constructor, the module with its ``preprocess_input``,
    its native input size and where Keras downloads its headless ImageNet weights from."""

    keras_name: str
    module: str
    native_size: int
    weights_url: str


_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
APPLICATIONS = {
    "vgg16": Application("VGG16", "vgg16", 224, _APPS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": Application("ResNet50", "resnet50", 224,
                            _APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v2": Application("MobileNetV2", "mobilenet_v2", 224,
                                _APPS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                                "{alpha}_{rows}_no_top.h5"),
    "efficientnet_b0": Application("EfficientNetB0", "efficientnet", 224,
                                   "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"),
}
"""The backbones of the ``model`` group that come from ``keras.applications``."""

_DATA = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_DATASETS = {
    "mnist": [("mnist.npz", _DATA + "mnist.npz")],
    "fashion_mnist": [(f"fashion-mnist/{name}", _DATA + name) for name in (
        "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")],
    "cifar10": [(f"cifar-10-batches-py-target/cifar-10-batches-py/{name}",
                 "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
                for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")],
}
"""The Keras datasets: each file Keras caches (under ``<keras_home>/datasets/``) and where it comes from."""


def keras_home() -> Path:
    """``$KERAS_HOME`` or ``~/.keras``; ``/tmp/.keras`` where that is not writable, as Keras does."""
    home = Path(os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK):
        home = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"
    return home


def imagenet_weights_url(model: str, alpha: float | None = None, image_size: int = 224) -> str:
    """The URL of the headless ImageNet weights Keras loads for ``model`` (MobileNetV2's depend on its
    width ``alpha``, which its config always sets, and the input size; other models have no width)."""
    template = APPLICATIONS[model].weights_url
    if "{alpha}" in template and alpha is None:
        raise ValueError(f"the ImageNet weights of {model} depend on its width: give its alpha")
    rows = image_size if image_size in MOBILENET_V2_SIZES else 224
    return template.format(alpha=float(alpha) if alpha is not None else None, rows=rows)


def imagenet_weights_file(model: str, alpha: float | None = None, image_size: int = 224) -> Path:
    """Where Keras caches those weights: ``<keras_home>/models/<file name>``."""
    return keras_home() / "models" / Path(urlsplit(imagenet_weights_url(model, alpha, image_size)).path).name


def dataset_files(name: str) -> list[Path]:
    """The cached files of Keras dataset ``name`` (see ``KERAS_DATASETS``)."""
    return [keras_home() / "datasets" / relative for relative, _ in KERAS_DATASETS[name]]


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout_s`` (a download could
    start); ``False`` at once under ``HARNESS_OFFLINE=1`` (air-gapped machines, and the tests). The
    answer is bounded, name lookup included: the offline check must answer in seconds, not hang."""
    if os.environ.get("HARNESS_OFFLINE", "") not in ("", "0"):
        return False
    if url not in _reachable:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        answer: list[bool] = []

        def connect() -> None:
            try:
                with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
                    answer.append(True)
            except OSError:
                answer.append(False)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(timeout_s)
        _reachable[url] = bool(answer and answer[0])
    return _reachable[url]


_reachable: dict[str, bool] = {}  # one attempt per URL and process: a sweep validates every cell
