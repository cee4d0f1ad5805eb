"""Model components: networks (``networks``), pretrained weight sources (``weights``), losses,
augmentation, the task (binary / multi-class heads, activations, metrics) and the checkpoint file
format (``checkpoint``)."""
