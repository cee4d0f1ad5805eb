"""HTTP front end of a trained run (Flask): upload an image, get its mask back.

Endpoints (every error is JSON ``{"error": "..."}`` with a 4xx status):

- ``GET /health`` -> 200 ``{"status": "ok", "run", "classes", "folds", "tta", "decision"}``.
- ``POST /predict`` with a multipart file field ``image`` (any format Pillow decodes; EXIF
  orientation applied, so the mask matches the image as viewers show it) and an optional
  ``format`` (query string or form field):

  - ``png`` (default): a single-channel 8-bit PNG of the image's size, ``image/png``. Binary runs:
    {0, 255} (foreground = 255, viewable as is); multi-class runs: the class id 0..C-1 per pixel.
  - ``rle``: ``{"image": {"height", "width"}, "classes": [...], "masks": {class: rle}}`` with
    Kaggle RLE (1-based ``start length`` pairs, row-major pixel order as in Carvana; empty mask
    = ``""``). Binary runs list the foreground class only; multi-class runs list every class.

  Errors: no ``image`` field 400, an undecodable file 400, a body over ``max_bytes`` 413
  (Flask's ``MAX_CONTENT_LENGTH``), an image of more than ``max_pixels`` pixels 413 (read from its
  header, before it is decoded: a 10 kB PNG can hold 9000x9000 pixels, over 1 GB once decoded and
  predicted), an unknown format 400; other methods 405, other paths 404.

The model is loaded once (``RunModel``) and shared; a lock serialises forward passes, so a
threaded server answers health checks while a prediction runs without two passes competing for
the same cores.
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
from flask import Flask, Response, jsonify, request
from PIL import Image, ImageOps, UnidentifiedImageError
from werkzeug.exceptions import HTTPException

from pipeline.data.imageio import to_rgb8
from pipeline.errors import PipelineError
from pipeline.ops.rle import rle_encode
from pipeline.predict.runmodel import RunModel
from pipeline.review.limits import MAX_MB, MAX_PIXELS

FORMATS = ("png", "rle")
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class BadRequest(Exception):
    """A client error: ``status`` and a one-line message naming the field and the fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an uploaded file (EXIF orientation applied; 16-bit and float grey
    scaled, as the dataset readers do); BadRequest if undecodable (400) or larger than
    ``max_pixels`` (413, from the header: nothing is decoded)."""
    if not data:
        raise BadRequest(400, f"field 'image' ({name}): empty file; upload an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header only
                width, height = img.size
                if width * height > max_pixels:
                    raise BadRequest(
                        413,
                        f"field 'image' ({name}): {width}x{height} = {width * height} pixels "
                        f"is over the limit of {max_pixels}; send a smaller image or "
                        "restart with a larger --max-pixels",
                    )
                return to_rgb8(ImageOps.exif_transpose(img), f"field 'image' ({name})")
    except PipelineError as err:
        raise BadRequest(400, str(err)) from None
    except _DECODE_ERRORS as err:
        raise BadRequest(
            400,
            f"field 'image' ({name}): not a decodable image ({type(err).__name__}); "
            f"upload a PNG, JPEG, BMP, TIFF or WebP file",
        ) from None


def mask_png(label: np.ndarray, binary: bool) -> bytes:
    """8-bit grey PNG of a (H, W) label: {0, 255} for binary runs,
    class ids for multi-class ones."""
    values = (label > 0).astype(np.uint8) * 255 if binary else label.astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")  # 2-D uint8 -> mode "L"
    return buf.getvalue()


def mask_rle(label: np.ndarray, classes: list[str], binary: bool) -> dict:
    """The ``rle`` response body: row-major Kaggle RLE per class."""
    ids = [1] if binary else range(len(classes))
    masks = {classes[c]: rle_encode((label == c).view(np.uint8), "C") for c in ids}
    return {
        "image": {"height": int(label.shape[0]), "width": int(label.shape[1])},
        "classes": list(classes),
        "masks": masks,
    }


def _requested_format() -> str:
    fmt = request.args.get("format") or request.form.get("format") or "png"
    if fmt not in FORMATS:
        raise BadRequest(400, f"format {fmt!r} is unknown; choose one of {list(FORMATS)}")
    return fmt


def _uploaded_image(max_pixels: int) -> np.ndarray:
    upload = request.files.get("image")  # reading the form enforces MAX_CONTENT_LENGTH (413)
    if upload is None:
        raise BadRequest(
            400, "field 'image' missing; POST multipart/form-data with an image file in 'image'"
        )
    return decode_image(upload.read(), upload.filename or "upload", max_pixels)


def create_app(
    run_model: RunModel, max_bytes: int = int(MAX_MB * 1024 * 1024), max_pixels: int = MAX_PIXELS
) -> Flask:
    """The Flask app serving ``run_model`` (loaded once by the caller); bodies over ``max_bytes``
    and images over ``max_pixels`` pixels get 413."""
    app = Flask("segfuse")
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    app.json.sort_keys = False  # keep "masks" in class-id order
    lock = threading.Lock()

    @app.errorhandler(BadRequest)
    def _bad_request(err: BadRequest):
        return jsonify(error=str(err)), err.status

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        messages = {
            413: f"request body over {max_bytes} bytes; send a smaller image or restart "
            "with a larger --max-mb"
        }
        return jsonify(error=messages.get(err.code, err.description)), err.code

    @app.get("/health")
    def health():
        return jsonify(
            status="ok",
            run=run_model.run,
            classes=run_model.classes,
            folds=run_model.folds,
            tta=run_model.tta,
            decision=run_model.decision_source,
        )

    @app.post("/predict")
    def predict():
        fmt, image = _requested_format(), _uploaded_image(max_pixels)
        with lock:
            label = run_model.label(run_model.predict([image])[0])
        binary = not run_model.multiclass
        if fmt == "rle":
            return jsonify(mask_rle(label, run_model.classes, binary))
        return Response(mask_png(label, binary), mimetype="image/png")

    return app
