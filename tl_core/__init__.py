"""TL Studio's library: transfer learning for image classifiers, with no UI.

The floors, each importing only the ones below it (tests/test_architecture.py):
base <- data <- models <- training <- trust <- serving <- jobs <- cli.
"""
