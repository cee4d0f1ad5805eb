"""Stage: serve a trained run over HTTP (``pipeline serve RUN``) until interrupted.

Loads the run once (every fold model), builds the Flask app of ``pipeline.review.server`` and runs it on
Werkzeug's threaded WSGI server. That server suits a workstation, a demo or a notebook kernel;
behind real traffic, mount ``create_app`` in a production WSGI server instead (the app is the same).
"""
from __future__ import annotations

from collections.abc import Callable

from werkzeug.serving import BaseWSGIServer, make_server

from pipeline.errors import PipelineError
from pipeline.paths import Layout
from pipeline.predict.runmodel import RunModel
from pipeline.review.server import create_app


def build_server(run_model: RunModel, host: str = "127.0.0.1", port: int = 8000,
                 max_mb: float = 20.0) -> BaseWSGIServer:
    """A bound, not yet running server for ``run_model``; ``port=0`` picks a free port.

    Raises:
        PipelineError: bad ``max_mb``, or the address cannot be bound (in use, no permission).
    """
    if max_mb <= 0:
        raise PipelineError(f"--max-mb {max_mb}: give a positive upload limit in MB")
    app = create_app(run_model, int(max_mb * 1024 * 1024))
    try:
        return make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as err:  # werkzeug exits when the port is taken
        raise PipelineError(f"{host}:{port}: cannot listen there ({err}); choose another --port or --host") from None


def run_serve(layout: Layout, run: str, host: str = "127.0.0.1", port: int = 8000, max_mb: float = 20.0,
              device: str = "auto", tta: str = "none", log: Callable[[str], None] = print) -> None:
    """Load ``run`` once and answer ``/health`` and ``/predict`` until Ctrl-C."""
    run_model = RunModel.load(layout, run, device, tta, batch_size=1)
    server = build_server(run_model, host, port, max_mb)
    url = f"http://{host}:{server.server_port}"
    log(f"serving run {run} ({len(run_model.folds)} fold models, classes {', '.join(run_model.classes)}, "
        f"decision {run_model.decision_source}) on {url}")
    log(f"try: curl {url}/health   curl -F image=@photo.jpg '{url}/predict?format=png' -o mask.png")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
