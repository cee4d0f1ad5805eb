"""Model components: networks (``networks``), pretrained weight sources (``weights``), losses,
augmentation and the task (binary / multi-class heads, activations, metrics)."""
