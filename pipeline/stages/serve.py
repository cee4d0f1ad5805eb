"""Stage: serve a trained run over HTTP (``pipeline serve RUN``) until interrupted.

Loads the run once (every fold model), builds the Flask app of ``pipeline.review.server`` and runs
it on waitress, a production WSGI server in pure Python. Waitress reads each request
(headers and body) in its event loop before a worker thread sees it, so a client that never finishes
its body holds no thread: it is closed after ``timeout_s`` seconds without a byte, at most
``connections`` are open at once, and ``threads`` bound the requests decoded and predicted at the
same time (with the pixel limit of the app, that bounds the memory a burst of uploads can take).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from waitress import create_server, wasyncore

from pipeline.errors import PipelineError
from pipeline.paths import Layout
from pipeline.predict.runmodel import RunModel
from pipeline.review.limits import CONNECTIONS, MAX_MB, MAX_PIXELS, THREADS, TIMEOUT_S
from pipeline.review.server import create_app

_BODY_SLACK = (
    1024 * 1024
)  # waitress's own limit sits above the app's, so the app answers 413 in JSON


class Server:
    """A bound, not yet running waitress server: ``serve_forever()`` in one thread, ``shutdown()``
    from another (or Ctrl-C), then ``server_close()``. ``server_port`` is the port it listens on."""

    def __init__(self, inner):
        self.inner = inner
        self.server_port = int(inner.effective_port)

    def serve_forever(self) -> None:
        """Answer requests until ``shutdown()``; Ctrl-C raises KeyboardInterrupt to the caller."""
        self.inner.asyncore.loop(
            timeout=self.inner.adj.asyncore_loop_timeout,
            map=self.inner._map,
            use_poll=self.inner.adj.asyncore_use_poll,
        )

    def shutdown(self) -> None:
        """Stop the event loop (it closes every socket from its own thread, then returns)."""
        self.inner.trigger.pull_trigger(lambda: wasyncore.close_all(self.inner._map))

    def server_close(self) -> None:
        """Close the sockets (if the loop has not) and stop the worker threads."""
        wasyncore.close_all(self.inner._map)
        self.inner.task_dispatcher.shutdown(timeout=5)


def build_server(
    run_model: RunModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_mb: float = MAX_MB,
    max_pixels: int = MAX_PIXELS,
    threads: int = THREADS,
    timeout_s: int = TIMEOUT_S,
    connections: int = CONNECTIONS,
) -> Server:
    """A bound, not yet running server for ``run_model``; ``port=0`` picks a free port.

    Raises:
        PipelineError: a limit that is not positive, or the address cannot be bound
            (in use, no permission).
    """
    limits = {
        "--max-mb": max_mb,
        "--max-pixels": max_pixels,
        "--threads": threads,
        "--timeout": timeout_s,
        "connections": connections,
    }
    for option, value in limits.items():
        if value <= 0:
            raise PipelineError(f"{option} {value}: give a positive limit")
    max_bytes = int(max_mb * 1024 * 1024)
    app = create_app(run_model, max_bytes, max_pixels)
    logging.getLogger("waitress").setLevel(
        logging.ERROR
    )  # no "Serving on ..." banner: run_serve says it
    try:
        inner = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            channel_timeout=timeout_s,
            cleanup_interval=max(1, min(30, timeout_s // 2)),
            connection_limit=connections,
            max_request_body_size=max_bytes + _BODY_SLACK,
            ident="segfuse",
        )
    except (OSError, ValueError) as err:
        raise PipelineError(
            f"{host}:{port}: cannot listen there ({err}); choose another --port or --host"
        ) from None
    return Server(inner)


def run_serve(
    layout: Layout,
    run: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_mb: float = MAX_MB,
    device: str = "auto",
    tta: str = "none",
    log: Callable[[str], None] = print,
    max_pixels: int = MAX_PIXELS,
    threads: int = THREADS,
    timeout_s: int = TIMEOUT_S,
) -> None:
    """Load ``run`` once and answer ``/health`` and ``/predict`` until Ctrl-C."""
    run_model = RunModel.load(layout.run(run), device, tta, batch_size=1)
    server = build_server(run_model, host, port, max_mb, max_pixels, threads, timeout_s)
    url = f"http://{host}:{server.server_port}"
    log(
        f"serving run {run} ({len(run_model.folds)} fold models, classes "
        f"{', '.join(run_model.classes)}, decision {run_model.decision_source}) on {url} "
        f"(waitress: {threads} threads, {timeout_s}s timeout, images up to {max_pixels} pixels "
        f"and {max_mb:g} MB)"
    )
    log(f"try: curl {url}/health   curl -F image=@photo.jpg '{url}/predict?format=png' -o mask.png")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
