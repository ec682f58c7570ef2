"""TL Studio's engine: data, models, strategies, training, runs, prediction, export. No UI here."""

__version__ = "0.1.0"
