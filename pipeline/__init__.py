"""segfuse: competition-grade image segmentation.

Layers (imports point one way only): ``ops`` <- components (``data``, ``folds``, ...)
<- ``stages`` <- ``cli``. See README.md for the data flow.
"""

__version__ = "0.1.0"
