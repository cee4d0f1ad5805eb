"""Stage: the whole job on the built-in demo data, as `make demo` runs it.

demo-data -> folds -> train (every resolution x fold) -> predict (OOF + test, hflip TTA) -> tune each
run -> ensemble the runs (fit weights, tune on fused OOF) -> validated submission -> summary.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config
from pipeline.paths import Layout
from pipeline.stages.demo_data import DemoSpec, write_demo
from pipeline.stages.ensemble import run_ensemble
from pipeline.stages.folds import run_folds
from pipeline.stages.predict import run_predict
from pipeline.stages.summary import ensemble_summary, run_summary
from pipeline.stages.train import run_train
from pipeline.stages.tune import run_tune


def run_demo(config: Path, ensemble_config: Path, spec: DemoSpec, overrides: tuple[str, ...] = (),
             log=print, progress_for=None, reporter_for=None) -> dict:
    """Run every stage; ``overrides`` apply to the experiment config (e.g. tiny sizes in tests)."""
    layout = Layout()
    cfg = load_config(config, overrides)
    root = Path(cfg.dataset.root)
    if (root / "sample_submission.csv").is_file():
        log(f"demo data: reusing {root}")
    else:
        info = write_demo(root, spec)
        log(f"demo data: {info['train']} labelled + {info['test']} test images in {root}")
    run_folds(cfg, layout)
    log(f"folds: {layout.folds_csv(cfg.dataset.name)}")
    run_train(cfg, layout, reporter_for=reporter_for)
    run_predict(cfg, layout, progress_for=progress_for)
    for run in cfg.run_names():
        run_tune(layout, run=run)
    members = "[" + ", ".join(f"{{run: {run}}}" for run in cfg.run_names()) + "]"
    submission = run_ensemble(ensemble_config, (f"members={members}",), layout, overwrite=True,
                              progress_for=progress_for)
    return {"runs": [run_summary(layout, run) for run in cfg.run_names()],
            "ensemble": ensemble_summary(layout, submission["ensemble"]), "submission": submission}
