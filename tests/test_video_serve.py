"""See the results: RunModel (one run as a single-image segmenter),
the video stage and the HTTP server."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline.config import dump_config, load_config
from pipeline.data import open_dataset
from pipeline.data.palette import COMMA10K_COLORS
from pipeline.decide.decision import Decision, write_decision
from pipeline.decide.store import ProbStore, quantize
from pipeline.errors import PipelineError
from pipeline.model import checkpoint
from pipeline.model.networks import build_model, output_channels
from pipeline.ops.rle import rle_decode
from pipeline.paths import Layout
from pipeline.predict.runmodel import RunModel
from pipeline.stages.driving_data import DrivingSpec, write_driving
from pipeline.stages.serve import build_server
from pipeline.stages.video import class_colours, run_video
from tests.conftest import copy_project, write_config

RUN, DRIVE_RUN = "tiny_64x96", "drive_64x96"


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def binary_model(tiny_project) -> RunModel:
    return RunModel.load(Layout(tiny_project).run(RUN), device="cpu")


@pytest.fixture(scope="module")
def drive_project(tmp_path_factory) -> Path:
    """A multi-class (comma10k, 6 classes) run with 2 untrained fold models: shapes, not quality."""
    work = tmp_path_factory.mktemp("drive_serve")
    write_driving(work / "data", DrivingSpec(frames=4, size=(96, 64), seed=3))
    cfg = load_config(
        write_config(
            work / "drive.yaml",
            f"""name: drive
dataset: {{layout: comma10k, name: drive, root: {work / "data"}}}
folds: {{k: 2}}
model: {{arch: Unet, encoder: resnet18, kwargs: {{encoder_depth: 3, decoder_channels: [16, 8, 4]}}}}
train: {{resolutions: [[64, 96]], geometry: resize}}
""",
        )
    )
    layout = Layout(work)
    layout.run_dir(DRIVE_RUN).mkdir(parents=True)
    (layout.run_dir(DRIVE_RUN) / "config.yaml").write_text(dump_config(cfg))
    for k in range(2):
        torch.manual_seed(k)
        model = build_model(cfg.model, output_channels(len(cfg.dataset.classes)), pretrained=False)
        checkpoint.save(
            layout.fold_dir(DRIVE_RUN, k) / "model.pt",
            {
                "config": cfg.model_dump(mode="json"),
                "run": DRIVE_RUN,
                "fold": k,
                "resolution": [64, 96],
                "geometry": "resize",
                "classes": cfg.dataset.classes,
                "state_dict": model.state_dict(),
            },
        )
    return work


@pytest.fixture(scope="module")
def drive_model(drive_project) -> RunModel:
    return RunModel.load(Layout(drive_project).run(DRIVE_RUN), device="cpu", batch_size=3)


def frames(n: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


# ---- RunModel ---------------------------------------------------------------------------------
def test_runmodel_matches_the_test_store(tiny_project, tmp_path, monkeypatch):
    """Mean of the fold models, same geometry: RunModel == ``pipeline predict --tta none``
    (uint8, ±1)."""
    from pipeline.cli import cli

    work = copy_project(tiny_project, tmp_path / "p")
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["predict", "tiny.yaml", "--split", "test", "--tta", "none"])
    assert result.exit_code == 0, result.output
    store = ProbStore.open(work / "artifacts" / "runs" / RUN / "test")
    dataset = open_dataset(load_config(work / "tiny.yaml").dataset)
    model = RunModel.load(Layout(work).run(RUN), device="cpu", batch_size=3)
    samples = dataset.test
    probs = model.predict([dataset.read_image(s) for s in samples])
    for sample, p in zip(samples, probs, strict=True):
        assert p.shape == (1, 64, 96) and p.dtype == np.float32
        assert np.abs(quantize(p).astype(int) - store.read(sample.image_id).astype(int)).max() <= 1


def test_runmodel_any_size_and_binary_labels(binary_model):
    images = [*frames(2, 64, 96), *frames(1, 37, 50)]
    probs = binary_model.predict(images)
    assert [p.shape for p in probs] == [(1, 64, 96), (1, 64, 96), (1, 37, 50)]
    assert all(0 <= p.min() and p.max() <= 1 for p in probs)
    label = binary_model.label(probs[2])
    assert label.shape == (37, 50) and label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1}
    assert binary_model.folds == [0, 1] and binary_model.classes[0] == "background"
    assert binary_model.decision_source == "default" and binary_model.decision.threshold == 0.5


def test_runmodel_reads_the_tuned_decision(tiny_project, tmp_path):
    work = copy_project(tiny_project, tmp_path / "p")
    write_decision(Layout(work).run(RUN), Decision(0.99, 10, True), "tune")
    model = RunModel.load(Layout(work).run(RUN), device="cpu")
    assert (model.decision.threshold, model.decision.min_area, model.decision.cleanup) == (
        0.99,
        10,
        True,
    )
    assert model.decision_source.endswith("decision.json")
    assert model.label(np.full((1, 4, 5), 0.98, np.float32)).sum() == 0


def test_runmodel_errors_name_the_path_and_the_fix(tiny_project, tmp_path):
    with pytest.raises(PipelineError, match=r"runs/nope: run 'nope' not found.*pipeline train"):
        RunModel.load(Layout(tiny_project).run("nope"))
    work = copy_project(tiny_project, tmp_path / "p")
    (Layout(work).fold_dir(RUN, 1) / "model.pt").unlink()
    with pytest.raises(
        PipelineError, match=r"fold1/model.pt: fold not trained yet.*pipeline train"
    ):
        RunModel.load(Layout(work).run(RUN), device="cpu")
    with pytest.raises(PipelineError, match="--tta 'sideways' is unknown"):
        RunModel.load(Layout(tiny_project).run(RUN), device="cpu", tta="sideways")


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
)
def test_runmodel_rejects_non_rgb_uint8(binary_model, bad):
    with pytest.raises(PipelineError, match="image 0: expected an \\(H, W, 3\\) uint8 RGB array"):
        binary_model.predict([bad])


def test_runmodel_multiclass(drive_model):
    probs = drive_model.predict(frames(4, 50, 70))  # two batches of 3 + 1
    assert len(probs) == 4 and probs[0].shape == (6, 50, 70)
    assert np.allclose(probs[0].sum(0), 1, atol=1e-4)
    label = drive_model.label(probs[0])
    assert label.max() < 6 and np.array_equal(
        label, quantize(probs[0]).argmax(0)
    )  # the stores' rule
    assert drive_model.decision_source == "argmax"
    assert [tuple(c) for c in class_colours(drive_model)] == list(COMMA10K_COLORS.values())


# ---- video ------------------------------------------------------------------------------------
def write_video(path: Path, n: int, width: int, height: int, fps: float = 12.5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i, frame in enumerate(frames(n, height, width)):
        frame[: height // 2, : width // 2] = 40 * i % 256  # something that moves
        writer.write(frame)
    writer.release()
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps, out = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        out.append(frame)
    capture.release()
    return out, fps


def test_video_side_by_side(tiny_project, binary_model, tmp_path):
    src = write_video(tmp_path / "in.mp4", 10, 96, 64)
    advanced = []

    @contextlib.contextmanager
    def progress_for(description, total):
        advanced.append(total)
        yield advanced.append

    dst = tmp_path / "out" / "seg.mp4"
    out = run_video(
        Layout(tiny_project),
        RUN,
        src,
        dst,
        batch=4,
        progress_for=progress_for,
        run_model=binary_model,
    )
    written, fps = read_video(dst)
    assert len(written) == 10 and written[0].shape == (64, 288, 3) and fps == pytest.approx(12.5)
    assert out["frames"] == 10 and (out["width"], out["height"]) == (288, 64)
    assert advanced == [10, 4, 4, 2]
    assert os.listdir(dst.parent) == ["seg.mp4"]  # the temp file was renamed, nothing left behind
    source, _ = read_video(src)  # left panel is the input frame (up to codec loss)
    assert np.abs(written[3][:, :96].astype(int) - source[3].astype(int)).mean() < 12


class _OddCapture:
    """A stand-in for cv2.VideoCapture serving 95x63 frames: OpenCV's writers round sizes down to
    even numbers, so a real odd-sized file cannot be made here."""

    def __init__(self, path):
        self.frames = frames(3, 63, 95)

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return True

    def get(self, prop):
        return {
            cv2.CAP_PROP_FPS: 10.0,
            cv2.CAP_PROP_FRAME_COUNT: 3.0,
            cv2.CAP_PROP_FRAME_WIDTH: 95.0,
            cv2.CAP_PROP_FRAME_HEIGHT: 63.0,
        }[prop]

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        pass


def test_video_loads_the_run_and_pads_odd_sizes(drive_project, tmp_path, monkeypatch):
    src = tmp_path / "odd.mp4"
    src.write_bytes(b"decoded by the stand-in")
    written_frames, real_writer = [], cv2.VideoWriter

    class SpyWriter:
        def __init__(self, path, fourcc, fps, size):
            self.writer, self.size = real_writer(path, fourcc, fps, size), size

        def isOpened(self):  # noqa: N802
            return self.writer.isOpened()

        def write(self, frame):
            written_frames.append(frame.copy())
            self.writer.write(frame)

        def release(self):
            self.writer.release()

    monkeypatch.setattr(cv2, "VideoCapture", _OddCapture)
    monkeypatch.setattr(cv2, "VideoWriter", SpyWriter)
    dst = tmp_path / "odd_out.mp4"
    out = run_video(Layout(drive_project), DRIVE_RUN, src, dst, batch=2, alpha=0.3, device="cpu")
    assert (out["width"], out["height"], out["frames"]) == (286, 64, 3) and out["classes"][
        0
    ] == "road"
    assert len(written_frames) == 3
    for frame, source in zip(written_frames, frames(3, 63, 95), strict=True):
        assert frame.shape == (64, 286, 3)  # 3 x 95 = 285 -> 286 wide, 63 -> 64 high
        assert (
            not frame[63].any() and not frame[:, 285].any()
        )  # the padding row and column are black
        np.testing.assert_array_equal(
            frame[:63, :95], source
        )  # left panel: the input frame, unshifted
    monkeypatch.undo()
    written, fps = read_video(dst)
    assert len(written) == 3 and written[0].shape == (64, 286, 3) and fps == pytest.approx(10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "input video not found"),
        (
            lambda d: (d / "text.mp4").write_text("not a video") and d / "text.mp4",
            "unreadable video",
        ),
        (
            lambda d: (
                cv2.VideoWriter(
                    str(d / "empty.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64)
                ).release()
                or d / "empty.mp4"
            ),
            "unreadable video|no decodable frames",
        ),
    ],
)
def test_video_bad_input(binary_model, tmp_path, make, message):
    src = make(tmp_path)
    with pytest.raises(PipelineError, match=message):
        run_video(Layout(tmp_path), RUN, src, tmp_path / "out.mp4", run_model=binary_model)
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 1.5}, "--alpha 1.5"),
        ({"batch": 0}, "--batch 0"),
        ({"dst": "in.mp4"}, "would replace the input"),
        ({"dst": "noext"}, "needs a video extension"),
    ],
)
def test_video_bad_arguments(binary_model, tmp_path, kwargs, message):
    src = write_video(tmp_path / "in.mp4", 2, 96, 64)
    dst = tmp_path / kwargs.pop("dst", "out.mp4")
    with pytest.raises(PipelineError, match=message):
        run_video(Layout(tmp_path), RUN, src, dst, run_model=binary_model, **kwargs)


# ---- HTTP server ------------------------------------------------------------------------------
@contextlib.contextmanager
def serving(run_model: RunModel, max_mb: float = 1.0):
    server = build_server(run_model, "127.0.0.1", 0, max_mb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def binary_url(binary_model):
    with serving(binary_model) as url:
        yield url


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def call(url: str, method: str = "GET", files: dict | None = None, fields: dict | None = None):
    """(status, content type, body) of a real HTTP request;
    multipart/form-data when files/fields."""
    data, headers = None, {}
    if files is not None or fields is not None:
        boundary, parts = "segfuse-test-boundary", []
        for name, value in (fields or {}).items():
            parts.append(
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for name, (filename, content) in (files or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode()
                + content
                + b"\r\n"
            )
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


def test_health(binary_url, binary_model):
    status, kind, body = call(f"{binary_url}/health")
    assert (status, kind) == (200, "application/json")
    info = json.loads(body)
    assert info["status"] == "ok" and info["run"] == RUN and info["classes"] == binary_model.classes


def test_predict_png_and_rle_agree(binary_url, binary_model):
    image = frames(1, 37, 50)[0]
    status, kind, body = call(
        f"{binary_url}/predict", "POST", files={"image": ("a.png", png_bytes(image))}
    )
    assert (status, kind) == (200, "image/png")
    mask = np.asarray(Image.open(io.BytesIO(body)))
    assert mask.shape == (37, 50) and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(mask // 255, binary_model.segment([image])[0])
    status, kind, body = call(
        f"{binary_url}/predict",
        "POST",
        files={"image": ("a.png", png_bytes(image))},
        fields={"format": "rle"},
    )
    assert (status, kind) == (200, "application/json")
    out = json.loads(body)
    assert out["image"] == {"height": 37, "width": 50} and list(out["masks"]) == [
        binary_model.classes[1]
    ]
    assert np.array_equal(
        rle_decode(out["masks"][binary_model.classes[1]], (37, 50), "C"), mask // 255
    )


@pytest.mark.parametrize(
    "path, method, files, fields, status, message",
    [
        ("/predict", "POST", None, {"format": "png"}, 400, "field 'image' missing"),
        (
            "/predict",
            "POST",
            {"image": ("a.txt", b"hello, not an image")},
            None,
            400,
            "not a decodable image",
        ),
        ("/predict", "POST", {"image": ("a.png", b"")}, None, 400, "empty file"),
        (
            "/predict?format=bmp",
            "POST",
            {"image": ("a.png", b"x")},
            None,
            400,
            "format 'bmp' is unknown",
        ),
        (
            "/predict",
            "POST",
            {"image": ("big.png", os.urandom(1_200_000))},
            None,
            413,
            "over 1048576 bytes",
        ),
        ("/predict", "GET", None, None, 405, "method is not allowed"),
        ("/health", "POST", None, None, 405, "method is not allowed"),
        ("/nothing", "GET", None, None, 404, "not found"),
    ],
)
def test_predict_errors(binary_url, path, method, files, fields, status, message):
    got, kind, body = call(f"{binary_url}{path}", method, files=files, fields=fields)
    assert (got, kind) == (status, "application/json")
    assert message in json.loads(body)["error"].lower() or message in json.loads(body)["error"]


def test_multiclass_server(drive_model):
    image = frames(1, 40, 60)[0]
    with serving(drive_model) as url:
        upload = {"image": ("a.png", png_bytes(image))}
        status, _, body = call(f"{url}/predict", "POST", files=upload)
        label = np.asarray(Image.open(io.BytesIO(body)))
        status_rle, _, body_rle = call(f"{url}/predict?format=rle", "POST", files=upload)
    assert status == status_rle == 200 and label.shape == (40, 60) and label.max() < 6
    masks = json.loads(body_rle)["masks"]
    assert list(masks) == drive_model.classes
    rebuilt = sum(
        c * rle_decode(masks[name], (40, 60), "C").astype(int) for c, name in enumerate(masks)
    )
    assert np.array_equal(rebuilt, label)


def test_server_port_in_use(binary_model):
    with serving(binary_model) as url:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(PipelineError, match=f"127.0.0.1:{port}: cannot listen there"):
            build_server(binary_model, "127.0.0.1", port)
