"""seqattn: attention from scratch, RNN+attention forecasting, and latent video prediction.

Importing the package does not import Keras, so the command line can pick the backend first
(see `seqattn.backend`).
"""

__version__ = "0.1.0"
