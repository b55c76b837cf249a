"""harness: which techniques really make deep-learning training faster, measured.

Data flows one way: the Hydra entry (``__main__``, ``sweep``) composes and validates a run, then starts
one process per run (``train``, the only part that imports Keras/TensorFlow and talks to Comet), which
writes one ``result.json``; ``report`` reads result files only.
"""

__version__ = "0.1.0"
