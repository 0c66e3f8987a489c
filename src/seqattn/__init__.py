"""seqattn: attention from scratch, RNN+attention forecasting, and latent video prediction.

Importing the package does not import Keras, so the command line can pick the backend first
(see `seqattn.backend`).
"""

import os

__version__ = "0.1.0"

# MLflow's usage telemetry is off for the project's processes, the MLflow UI of `seqattn ui` and
# every child process, by MLflow's documented opt-out (read when mlflow is imported, which the
# project does only after this). MLFLOW_DISABLE_TELEMETRY=false in the environment opts back in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
