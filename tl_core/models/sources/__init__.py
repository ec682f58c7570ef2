"""Where weights come from: the hub, a weights file, an installed package, a positional remap."""
