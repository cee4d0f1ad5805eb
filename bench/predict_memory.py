"""Peak RSS of ``pipeline predict --split test`` on 200 vs 2,000 small synthetic test images.

Each measurement runs in a fresh process (peak RSS is per process). A tiny model is trained for
one epoch first so the real predict command runs end to end.

    .venv/bin/python bench/predict_memory.py [--small 200 --large 2000 --size 96x64]

Last line: ``ratio = <RSS(large) / RSS(small)>`` (target <= 1.15: memory does not grow with
the number of test images).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = """name: mem
dataset: {{layout: carvana, name: mem, root: {root}}}
folds: {{k: 2, seed: 0}}
model: {{arch: Unet, encoder: resnet18, kwargs: {{encoder_depth: 3, decoder_channels: [16, 8, 4]}}}}
train: {{resolutions: [[64, 96]], geometry: pad, epochs: 1, batch_size: 8}}
predict: {{tta: hflip, batch_size: 8}}
"""


def pipeline(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, check=True, capture_output=True
    )


def peak_rss_mb(cwd: Path) -> float:
    code = (
        "import resource, sys; from pipeline.cli import cli\n"
        "try:\n"
        "    cli(['predict', 'mem.yaml', '--split', 'test', '--force'], standalone_mode=False)\n"
        "finally:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--size", default="96x64")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        views = 20
        pipeline(
            "demo-data",
            str(data),
            "--cars",
            "2",
            "--views",
            str(views),
            "--test-cars",
            str(-(-args.large // views)),
            "--size",
            args.size,
            cwd=work,
        )
        (work / "mem.yaml").write_text(CONFIG.format(root=data))
        pipeline("folds", "mem.yaml", cwd=work)
        pipeline("train", "mem.yaml", cwd=work)
        results = {}
        for n in (args.small, args.large):
            test_dir = data / "test"
            keep = sorted(test_dir.glob("*.jpg"))
            hidden = work / "hidden"
            hidden.mkdir(exist_ok=True)
            for f in keep[n:]:
                shutil.move(str(f), hidden / f.name)
            sample = data / "sample_submission.csv"
            rows = sample.read_text().splitlines()
            sample.with_suffix(".bak").write_text("\n".join(rows) + "\n")
            sample.write_text("\n".join(rows[: n + 1]) + "\n")
            results[n] = peak_rss_mb(work)
            for f in hidden.iterdir():
                shutil.move(str(f), test_dir / f.name)
            sample.write_text(sample.with_suffix(".bak").read_text())
            print(f"{n} test images: peak RSS {results[n]:.0f} MB")
        print(f"ratio = {results[args.large] / results[args.small]:.3f}")


if __name__ == "__main__":
    main()
