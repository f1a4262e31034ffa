"""fer_utils: the helper package of the FER course (FER2013 data, the paper's CNN and SE-CNN, training, evaluation).

Modules: config (the paper's constants and the course's settings), dataset (FerData), data (loaders), synthetic,
explore (data defects), models and attention (the networks), augment and calibration (the robust recipe), training
(the recipe) with callbacks, hardware, run_settings, runfolder and locking (the run folder), evaluation, plots,
pipeline (the notebooks run) and publish (reports/), media, faces and predict (the `predict` command), face_studies
(its detectors measured), explain and ferplus (notebook 06), export (notebook code -> package), cli (the command
line's options) and commands (what each command does). Importing it changes nothing in the caller's environment.
"""

__version__ = "0.1.0"
