"""segfuse: competition-grade image segmentation.

Layers (imports point one way only): ``ops`` <- components (``data``, ``model``, ``decide``, ...)
<- ``stages`` <- ``cli``. See README.md for the data flow.
"""

__version__ = "0.1.0"

import os as _os

# albumentations checks PyPI for a newer version when imported; nothing here may touch the network
# at run time (offline kernels, these machines),
# so switch that check off before anything imports it.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
