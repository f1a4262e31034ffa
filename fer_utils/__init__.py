"""fer_utils: the helper package of the FER course (FER2013 data, the paper's CNN and SE-CNN, training, evaluation).

Modules: config (the paper's constants), data, synthetic, models, training, evaluation, plots, pipeline, cli.
"""

__version__ = "0.1.0"
