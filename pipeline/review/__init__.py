"""For people looking at results: run/ensemble sources with their decision, QA suspicion scores,
plots, overlay panels and grids, static HTML pages and the HTTP server.

Pure components where possible: numpy/OpenCV/PIL in, arrays or bytes/strings out; stages decide
where they go.
"""
