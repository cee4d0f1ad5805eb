"""Stage: segment a video with a trained run and write a side-by-side demo video.

Each output frame is ``[original | colour map | blend]`` (the DeepLab driving demo's layout):
3 x the input width, the input height, the same fps and frame count. The colour map paints
each class in the dataset's output colours (comma10k palette where the dataset has one, else
the default palette, as ``png-colour`` submissions do); binary runs paint the foreground class
on black, and their blend tints only the foreground. mp4v (MPEG-4 part 2) stores even sizes
only, so an odd width or height gets one black column/row of padding on the right/bottom.

The video is written to a temp file beside OUTPUT and renamed onto it when complete, so a killed
run never leaves a truncated video under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipelineError
from pipeline.fsio import make_temp
from pipeline.output.masks import default_palette, output_lut
from pipeline.paths import Layout
from pipeline.predict.runmodel import RunModel

DEFAULT_FPS = 25.0  # when a container does not record its frame rate


@dataclass(frozen=True)
class VideoInfo:
    """What the input container says: frame count (may be an estimate), fps, frame size."""

    frames: int
    fps: float
    width: int
    height: int


def open_video(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """An opened capture and its info; a missing or undecodable file is a PipelineError."""
    if not path.is_file():
        raise PipelineError(f"{path}: input video not found; check the path")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PipelineError(
            f"{path}: unreadable video (OpenCV/FFmpeg cannot decode it); re-encode it as "
            f"H.264 or MPEG-4 .mp4"
        )
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    info = VideoInfo(
        max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
        fps,
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    return capture, info


def read_batches(capture: cv2.VideoCapture, size: int) -> Iterator[list[np.ndarray]]:
    """Lists of up to ``size`` RGB frames (H, W, 3) uint8, until the stream ends."""
    batch: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def class_colours(run_model: RunModel) -> np.ndarray:
    """(len(classes), 3) uint8 RGB colour per class id; binary runs: background black."""
    try:
        from pipeline.data import open_dataset

        colours = output_lut(open_dataset(run_model.config.dataset), "png-colour")
    except (
        PipelineError,
        OSError,
    ):  # dataset not on this machine: the run still has its class list
        colours = default_palette(len(run_model.classes))
    colours = np.array(colours[: len(run_model.classes)], np.uint8)
    if not run_model.multiclass:
        colours[0] = 0
    return colours


def compose(
    frame: np.ndarray, label: np.ndarray, colours: np.ndarray, alpha: float, binary: bool
) -> np.ndarray:
    """``[frame | colour map | blend]`` as one (H, 3W, 3) uint8 RGB image.

    The blend is ``(1 - alpha) * frame + alpha * colour`` on painted pixels: every pixel for
    multi-class runs, the foreground only for binary runs (their background stays untouched).
    """
    colour = colours[label]
    blend = cv2.addWeighted(frame, 1.0 - alpha, colour, alpha, 0.0)
    if binary:
        blend = np.where(label[..., None] > 0, blend, frame)
    return np.concatenate([frame, colour, blend], axis=1)


def _even(n: int) -> int:
    return n + (n % 2)


def _fit_even(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an RGB image bottom/right with black to (height, width) (mp4v needs even sizes)."""
    if image.shape[:2] == (height, width):
        return image
    return cv2.copyMakeBorder(
        image,
        0,
        height - image.shape[0],
        0,
        width - image.shape[1],
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )


@contextlib.contextmanager
def atomic_video(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` (same suffix, so OpenCV picks the container); renamed on success.

    ``pipeline.fsio.atomic_open`` hands out a file object, but cv2.VideoWriter needs a path.
    """
    tmp = make_temp(path, suffix=path.suffix)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _check_written(tmp: Path, dst: Path, frames: int) -> None:
    """OpenCV's writer drops a refused write (full disk) without a word, leaving a video without
    its index; read the count back before the temp file takes ``dst``'s name."""
    capture = cv2.VideoCapture(str(tmp))
    written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    if written != frames:
        raise PipelineError(
            f"{dst}: only {written} of {frames} frames could be written (disk "
            "full or read-only?); free space or choose another OUTPUT and rerun"
        )


def _writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise PipelineError(
            f"{path}: OpenCV cannot write an mp4v video here; give OUTPUT an .mp4 name "
            f"in a writable folder"
        )
    return writer


def _check_args(src: Path, dst: Path, batch: int, alpha: float) -> None:
    if not dst.suffix:
        raise PipelineError(f"{dst}: output needs a video extension; use e.g. {dst}.mp4")
    if dst.resolve() == src.resolve():
        raise PipelineError(
            f"{dst}: output would replace the input video; choose another OUTPUT path"
        )
    if batch < 1:
        raise PipelineError(f"--batch {batch}: give a batch size of at least 1")
    if not 0.0 <= alpha <= 1.0:
        raise PipelineError(f"--alpha {alpha}: give a blend weight between 0 and 1")


def _segment_frames(
    run_model: RunModel,
    capture,
    writer,
    info: VideoInfo,
    alpha: float,
    batch: int,
    advance: Callable[[int], None] | None,
) -> int:
    """Segment and write every frame; returns the number of frames written."""
    colours, binary = class_colours(run_model), not run_model.multiclass
    height, width, frames = _even(info.height), _even(3 * info.width), 0
    for rgb in read_batches(capture, batch):
        for frame, probs in zip(rgb, run_model.predict(rgb), strict=True):
            panel = _fit_even(
                compose(frame, run_model.label(probs), colours, alpha, binary), height, width
            )
            writer.write(cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        frames += len(rgb)
        if advance:
            advance(len(rgb))
    return frames


def run_video(
    layout: Layout,
    run: str,
    src: Path,
    dst: Path,
    batch: int = 8,
    alpha: float = 0.5,
    tta: str = "none",
    device: str = "auto",
    progress_for=None,
    run_model: RunModel | None = None,
) -> dict:
    """Segment ``src`` frame by frame with ``run`` and write the side-by-side video ``dst``.

    Args:
        progress_for: ``progress_for(description, total)`` context manager yielding ``advance(n)``
            (``pipeline.console.progress_bar``); None: silent.
        run_model: an already loaded model (tests, servers); else loaded from ``layout``.

    Returns:
        Summary: run, input, output, frames, fps, width/height of the output, decision, seconds.
    """
    src, dst = Path(src), Path(dst)
    _check_args(src, dst, batch, alpha)
    capture, info = open_video(src)
    started = time.perf_counter()
    try:
        run_model = run_model or RunModel.load(layout.run(run), device, tta, batch)
        height, width = _even(info.height), _even(3 * info.width)
        with atomic_video(dst) as tmp:
            writer = _writer(tmp, info.fps, width, height)
            try:
                with (
                    progress_for(f"{run} video", info.frames or None)
                    if progress_for
                    else contextlib.nullcontext(None)
                ) as advance:
                    frames = _segment_frames(
                        run_model, capture, writer, info, alpha, batch, advance
                    )
            finally:
                writer.release()
            if frames == 0:
                raise PipelineError(
                    f"{src}: the video holds no decodable frames; check or re-encode it"
                )
            _check_written(tmp, dst, frames)
    finally:
        capture.release()
    return {
        "run": run_model.run,
        "input": str(src),
        "output": str(dst),
        "frames": frames,
        "fps": info.fps,
        "width": width,
        "height": height,
        "classes": run_model.classes,
        "decision": run_model.decision_source,
        "seconds": time.perf_counter() - started,
    }
