"""The run process (``python -m harness.run.train RUN_DIR``): the only part that imports Keras, a
backend and comet_ml. Data, models, optimizers, the timing rules and the run's Comet experiment."""
