"""fer_utils: the helper package of the FER course (FER2013 data, the paper's CNN and SE-CNN, training, evaluation).

Modules: config (the paper's constants and the course's settings), data, synthetic, explore (data defects), models,
training, evaluation, plots, pipeline, export (notebook code -> package), cli. Importing it changes nothing in the
caller's environment.
"""

__version__ = "0.1.0"
