"""fer_utils: the helper package of the FER course (FER2013 data, the paper's CNN and SE-CNN, training, evaluation).

Modules: config (the paper's constants), data, synthetic, explore (data defects), models, training, evaluation,
plots, pipeline, cli.
"""

import os

# Keep TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) out of notebooks and logs; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
