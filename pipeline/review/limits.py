"""The HTTP server's default limits (``pipeline serve``),
in a module light enough for the CLI to import.

Together they bound what a burst of uploads can take: each request holds at most one image of
``MAX_PIXELS`` pixels (about 14 bytes a pixel once decoded and predicted), ``THREADS`` of them at
once; a connection that goes silent for ``TIMEOUT_S`` (an upload never finished) is closed.
"""

MAX_MB = 20.0  # largest request body
MAX_PIXELS = (
    4096 * 4096
)  # 16.8 MP, checked from the header before decoding: Carvana 2.5 MP, Cityscapes 2.1 MP
THREADS = 4  # requests handled at once (decode + predict; forward passes take turns on one lock)
TIMEOUT_S = (
    30  # a connection silent this long (headers or body unfinished, or idle keep-alive) is closed
)
CONNECTIONS = 100  # open connections at most; more wait in the listen backlog
