"""Stage: ``pipeline show`` — one PNG grid of overlays to look at a run's or an ensemble's results.

Labelled (OOF) rows: ``image | ground truth | prediction | errors`` (red = predicted but wrong,
blue = missed; see ``pipeline.review.overlay``), captioned with the image's Dice (binary) or mIoU
(multi-class) under the source's decision (``pipeline.review.sources``). Test rows:
``image | prediction | uncertainty``. Images come from ``ids``, the ``worst`` K OOF images, or
``random`` K images of the split (seeded). Every row is scaled to ``width`` pixels.

Default output: ``<run or ensemble folder>/show/<split>_<worst|random|ids><K>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes
from pipeline.paths import Layout
from pipeline.review.overlay import (
    LABELLED_TITLES,
    UNLABELLED_TITLES,
    grid,
    labelled_row,
    png_bytes,
    unlabelled_row,
)
from pipeline.review.sources import Source, image_score, open_source

SPLITS = ("oof", "test")
DEFAULT_WIDTH = 1200


def metric_name(source: Source) -> str:
    return "mIoU" if source.multiclass else "Dice"


def score_all(source: Source, store: ProbStore, progress=None) -> dict[str, float]:
    """Per-image score of every OOF image in ``store`` (reads each mask once)."""
    scores = {}
    for image_id in store.ids():
        truth = source.dataset.read_mask(source.dataset.sample(image_id))
        scores[image_id] = image_score(source, source.label(store.read(image_id)), truth)
        if progress:
            progress(1)
    return scores


def _check_request(
    ids: list[str] | None, worst: int | None, random: int | None, split: str
) -> None:
    if split not in SPLITS:
        raise PipelineError(f"--split {split!r}: choose one of {list(SPLITS)}")
    if sum(x is not None and x != [] for x in (ids, worst, random)) != 1:
        raise PipelineError("give exactly one of --id (repeatable), --worst K or --random K")
    if worst is not None and split != "oof":
        raise PipelineError(
            "--worst K ranks by OOF score and needs ground truth; use --split oof, or --random K"
        )
    for k, flag in ((worst, "--worst"), (random, "--random")):
        if k is not None and k < 1:
            raise PipelineError(f"{flag} {k}: give a number of images >= 1")


def select(
    source: Source,
    store: ProbStore,
    ids: list[str] | None,
    worst: int | None,
    random: int | None,
    seed: int,
    progress=None,
) -> tuple[list[str], dict[str, float]]:
    """The image ids to show (in row order) and any scores already computed."""
    if worst is not None:
        scores = score_all(source, store, progress)
        return sorted(scores, key=lambda i: (scores[i], i))[:worst], scores
    available = store.ids()
    if random is not None:
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(available), size=min(random, len(available)), replace=False)
        return [available[i] for i in sorted(picked)], {}
    missing = [i for i in ids if i not in set(available)]
    if missing:
        raise PipelineError(
            f"{store.path}: no image '{missing[0]}' in this store (it holds {len(available)} "
            f"images, e.g. '{available[0] if available else '-'}'); check --id and --split"
        )
    return list(ids), {}


def _caption(
    source: Source, image_id: str, group: str, score: float | None, pred: np.ndarray
) -> str:
    if score is not None:
        return f"{image_id}  (group {group})  {metric_name(source)} {score:.4f}"
    area = float(np.count_nonzero(pred != source.background)) / pred.size
    return f"{image_id}  (group {group})  predicted area {area:.1%}"


def render_row(
    source: Source,
    store: ProbStore,
    image_id: str,
    split: str,
    width: int,
    score: float | None = None,
) -> tuple[np.ndarray, float | None]:
    """One grid row of ``image_id`` (labelled layout for OOF, unlabelled for test)
    and its score (OOF)."""
    sample = source.dataset.sample(image_id)
    image, probs = source.dataset.read_image(sample), store.read(image_id)
    if probs.shape[1:] != image.shape[:2]:
        raise PipelineError(
            f"{store.path}: '{image_id}' was predicted at {probs.shape[1:]} but the image is "
            f"{image.shape[:2]}; rerun 'pipeline predict --force'"
        )
    pred, colours = source.label(probs), source.colours()
    if split == "test":
        text = _caption(source, image_id, sample.group, None, pred)
        return unlabelled_row(image, pred, probs, colours, text, width, source.skip), None
    truth = source.dataset.read_mask(sample)
    score = image_score(source, pred, truth) if score is None else score
    text = _caption(source, image_id, sample.group, score, pred)
    row = labelled_row(
        image,
        truth,
        pred,
        colours,
        text,
        width,
        source.skip,
        source.background,
        source.dataset.ignore_index,
    )
    return row, score


def default_out(
    source: Source, split: str, ids: list[str] | None, worst: int | None, random: int | None
) -> Path:
    what = (
        f"worst{worst}"
        if worst is not None
        else f"random{random}"
        if random is not None
        else f"ids{len(ids)}"
    )
    return source.dir.show_dir() / f"{split}_{what}.png"


def run_show(
    layout: Layout,
    run: str | None = None,
    ensemble: str | None = None,
    ids: list[str] | None = None,
    worst: int | None = None,
    random: int | None = None,
    split: str = "oof",
    out: Path | None = None,
    seed: int = 0,
    width: int = DEFAULT_WIDTH,
    progress=None,
) -> dict:
    """Write one PNG grid of overlays; returns ``{"path", "split", "metric", "images", "scores"}``.

    Args:
        layout: the project layout.
        run / ensemble: exactly one source.
        ids / worst / random: exactly one way to choose images (``worst`` needs ``split="oof"``).
        split: ``"oof"`` (labelled, with errors) or ``"test"`` (prediction and uncertainty).
        out: PNG path; default ``<source folder>/show/<split>_<what>.png``.
        seed: random selection seed.
        width: pixel width of every row.
        progress: optional ``progress(n)`` callback, called per image scored for ``worst``.
    """
    _check_request(ids, worst, random, split)
    if width < 200:
        raise PipelineError(f"--width {width}: give at least 200 pixels")
    source = open_source(layout.source(run, ensemble))
    store = source.store(split)
    chosen, scores = select(source, store, ids, worst, random, seed, progress)
    if not chosen:
        raise PipelineError(f"{store.path}: the store holds no images to show")
    rendered = [render_row(source, store, i, split, width, scores.get(i)) for i in chosen]
    rows = [row for row, _ in rendered]
    titles = LABELLED_TITLES if split == "oof" else UNLABELLED_TITLES
    path = Path(out) if out else default_out(source, split, ids, worst, random)
    atomic_write_bytes(path, png_bytes(grid(rows, titles)))
    shown = {i: score for i, (_, score) in zip(chosen, rendered, strict=True) if score is not None}
    return {
        "path": str(path),
        "split": split,
        "metric": metric_name(source),
        "images": chosen,
        "scores": shown,
    }
