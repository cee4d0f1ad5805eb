"""What a fold model was trained from: the fingerprint of its config and fold images, and the
checks that reuse it (``pipeline train`` skips or resumes a fold only while it matches; ``pipeline
predict`` predicts a fold's held-out images only with a model whose fingerprint matches the folds
table now, so a remade folds table never yields a leaky OOF).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config
from pipeline.decide.pseudo_labels import PseudoRow, check_no_leak, table_from_csv
from pipeline.errors import PipelineError
from pipeline.model.precision import resolve_precision
from pipeline.train.dist import resolve_device
from pipeline.train.loop import config_hash

# Keys added after runs were trained, whose unset value (None) keeps the old behaviour: left out of
# the fingerprint while unset, so folds finished before them stay finished.
ADDED_KEYS = (("augment", "crop"), ("train", "swa_epochs"))
# added keys whose default means what every run meant before they existed
ADDED_DEFAULTS = {("train", "average"): "auto", ("loss", "class_balance"): 0.0}


def load_pseudo(cfg: Config, dataset) -> list[PseudoRow]:
    """The pseudo table of ``cfg.pseudo`` (checked: unlabelled images only, files present)."""
    if not cfg.pseudo.table:
        return []
    path = Path(cfg.pseudo.table)
    if not path.is_file():
        raise PipelineError(
            f"pseudo.table {path}: not found; make it with 'pipeline pseudo ENSEMBLE --round R'"
        )
    rows = table_from_csv(path.read_text(encoding="utf-8"), str(path))
    check_no_leak(rows, {s.image_id for s in dataset.train}, str(path))
    test_ids = {s.image_id for s in dataset.test}
    for r in rows:
        if r.image_id not in test_ids:
            raise PipelineError(
                f"{path}: image '{r.image_id}' is not an unlabelled image of "
                f"dataset '{dataset.name}'"
            )
        if not Path(r.mask).is_file():
            raise PipelineError(f"{path}: pseudo mask {r.mask} is missing; rerun 'pipeline pseudo'")
    return rows


def trained_precision(cfg: Config) -> str:
    """fp32, bf16 or fp16: what ``train.precision`` means on the device of ``train.device``."""
    requested = cfg.train.precision if cfg.train.amp else "fp32"
    return resolve_precision(requested, resolve_device(cfg.train.device), "train.precision").name


def training_config(cfg: Config) -> dict:
    """The config as the fingerprint sees it: no ``predict`` section (it cannot change a trained
    model), unset added keys left out, ``train.precision`` as resolved (fp32: left out)."""
    training = cfg.model_dump(mode="json", exclude={"predict"})
    for section, key in ADDED_KEYS:  # unset, they mean what the config meant before they existed
        if training[section].get(key) is None:
            training[section].pop(key, None)
    for (section, key), default in ADDED_DEFAULTS.items():
        if training[section].get(key) == default:
            training[section].pop(key, None)
    # What the model was computed in, not what was asked for: "auto" is fp32 on one machine and
    # bf16 on another. fp32 is what every run meant before train.precision existed.
    training["train"].pop("precision", None)
    resolved = trained_precision(cfg)
    if resolved != "fp32":
        training["train"]["precision"] = resolved
    return training


def fingerprint(cfg: Config, train: list, val: list, pseudo) -> str:
    """What a finished or interrupted fold must match to be reused: config and fold images."""
    return config_hash(
        {
            "config": training_config(cfg),
            "train": sorted(s.image_id for s in train),
            "val": sorted(s.image_id for s in val),
            "pseudo": sorted(r.mask for r in pseudo),
        }
    )


def _flat(value, prefix: str = "") -> dict[str, object]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, object] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_changes(trained: dict, now: Config) -> list[str]:
    """``key old -> new`` for each training setting that differs between a checkpoint's config
    (``trained``, as it was dumped) and ``now`` (``predict`` left out; a key one side lacks and the
    other leaves unset is no change)."""
    before = _flat({k: v for k, v in trained.items() if k != "predict"})
    after = _flat(now.model_dump(mode="json", exclude={"predict"}))
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return [f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in changed]


def check_fold_model(
    cfg: Config,
    trained: dict,
    recorded: str | None,
    train: list,
    val: list,
    pseudo,
    where: Path,
    folds_table: Path,
    dataset,
) -> None:
    """Refuse a fold model that was not trained on the fold the folds table gives it now.

    ``trained``: the checkpoint's config; ``recorded``: the fingerprint its ``summary.json`` holds
    (None: unfinished, nothing to check). The fingerprint is recomputed with the checkpoint's own
    config and today's fold images, so a config edited since (another ``train.epochs`` for one
    fold) is no leak and passes; other fold images raise one PipelineError that says so, lists
    the config changes too, and what to run. A checkpoint config this version cannot read is
    checked with ``cfg``, as ``pipeline train`` checks it.
    """
    if recorded is None or fingerprint(cfg, train, val, pseudo) == recorded:
        return
    try:
        as_trained = Config.model_validate(trained)
    except ValueError:
        as_trained = cfg
    same_table = as_trained.pseudo.table == cfg.pseudo.table
    then = pseudo if same_table else load_pseudo(as_trained, dataset)
    if fingerprint(as_trained, train, val, then) == recorded:
        return  # the same fold images: the model never saw the images it is asked to predict
    said = (
        f"on other images than {folds_table} assigns to its fold now (was 'pipeline folds' "
        "rerun? its OOF predictions would leak)"
    )
    changes = config_changes(trained, cfg)
    if changes:
        more = f"; +{len(changes) - 3} more" if len(changes) > 3 else ""
        said += f" and with another config ({'; '.join(changes[:3])}{more})"
    raise PipelineError(
        f"{where}: this fold model was trained {said}; retrain it with 'pipeline "
        "train CONFIG --force' or restore the folds table it was trained with"
    )
