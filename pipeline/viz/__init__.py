"""Pictures for people: overlay panels and grids (``overlay``), static HTML pages (``html``).

Pure components: numpy/OpenCV/PIL in, arrays or bytes/strings out; stages decide where they go.
"""
