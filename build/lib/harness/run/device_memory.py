"""The GPU's peak memory over a run, from the counter its backend keeps: read once, after training, with no
sampling inside the timed epochs. The run's process starts from a server that never ran an operation, so
the peak is this run's own."""

from __future__ import annotations


def peak_bytes(backend: str) -> int | None:
    """The run's GPU's peak allocated bytes as ``backend`` counts them (TensorFlow's
    ``get_memory_info(...)["peak"]``, JAX's ``memory_stats()["peak_bytes_in_use"]``, PyTorch's
    ``max_memory_allocated``), or ``None`` where the run has no GPU or the backend keeps no such counter."""
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform == "gpu" else None
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    return None
