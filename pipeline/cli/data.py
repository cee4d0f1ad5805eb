"""CLI commands that make or import data: demo-data, driving-data, import-annotations."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeline.cli.common import parse_size
from pipeline.console import console, progress_bar


@click.command("import-annotations")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["coco", "via"]),
    required=True,
    help="COCO instances JSON or VGG Image Annotator (VIA) JSON.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder the file names in SOURCE are relative to.",
)
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Dataset root to write: images/ (copies), masks/ (class-index PNGs), import.json.",
)
@click.option(
    "--label-map",
    "label_map",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Control sheet CSV with columns source,source_id,source_name,class.",
)
@click.option(
    "--classes", required=True, help="Project class names, background first: background,person,car."
)
@click.option(
    "--attribute",
    default="class",
    show_default=True,
    help="VIA region attribute holding the class.",
)
@click.option(
    "--source",
    "source_name",
    default=None,
    help="Label-map 'source' of SOURCE [default: its file stem].",
)
@click.option(
    "--crowd-value",
    type=click.IntRange(0, 255),
    default=None,
    help="COCO: paint iscrowd regions with this value (e.g. 255 = ignore) instead of their class.",
)
def import_annotations_cmd(
    source: Path,
    fmt: str,
    images_dir: Path,
    out_root: Path,
    label_map: Path,
    classes: str,
    attribute: str,
    source_name: str | None,
    crowd_value: int | None,
) -> None:
    """Rasterise COCO/VIA polygons and RLE into a folder dataset (images/ + class-index masks/)."""
    import yaml

    from pipeline.stages.import_annotations import run_import

    names = [c.strip() for c in classes.split(",")]
    with progress_bar("writing masks", None) as advance:
        s = run_import(
            source,
            fmt,
            images_dir,
            out_root,
            label_map,
            names,
            attribute,
            source_name,
            crowd_value,
            progress=advance,
        )
    console.print(
        f"wrote {s['images']} images + masks to {s['out_root']}: {s['annotations']} annotations, "
        f"{s['empty_images']} images without any"
    )
    table = Table()
    for col in ("class", "pixels", "share"):
        table.add_column(col, justify="right")
    total = max(sum(s["pixels"].values()), 1)
    for name, count in s["pixels"].items():  # classes in index order, then any extra value (crowd)
        table.add_row(name, str(count), f"{count / total:.2%}")
    console.print(table)
    console.print("dataset section that reads it (also in import.json):")
    click.echo(yaml.safe_dump({"dataset": s["dataset"]}, sort_keys=False), nl=False)


@click.command("driving-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--frames", default=40, show_default=True, help="Labelled frames (drives of 4 frames)."
)
@click.option(
    "--test-frames", default=0, show_default=True, help="Unlabelled frames (test_imgs/ or test/)."
)
@click.option(
    "--size", default="582x437", show_default=True, callback=parse_size, help="WIDTHxHEIGHT."
)
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option(
    "--layout",
    type=click.Choice(["comma10k", "folder"]),
    default="comma10k",
    show_default=True,
    help="comma10k: imgs/ + colour masks/; folder: images/ + class-id masks/.",
)
def driving_data_cmd(
    out_dir: Path, frames: int, test_frames: int, size: tuple[int, int], seed: int, layout: str
) -> None:
    """Generate synthetic dash-cam frames with comma10k's classes
    (road, lanes, undrivable, movable, my car)."""
    from pipeline.stages.driving_data import DrivingSpec, write_driving

    spec = DrivingSpec(frames=frames, size=size, seed=seed, layout=layout, test_frames=test_frames)
    with progress_bar("rendering", frames + test_frames) as advance:
        info = write_driving(out_dir, spec, advance)
    console.print(
        f"wrote {info['train']} labelled + {info['test']} test frames from {info['drives']} drives "
        f"({size[0]}x{size[1]}, {layout} layout) to {out_dir}"
    )


@click.command("demo-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--cars", default=8, show_default=True, help="Labelled cars (16 views each by default)."
)
@click.option("--views", default=16, show_default=True, help="Views per car around the turntable.")
@click.option("--test-cars", default=2, show_default=True, help="Unlabelled cars in test/.")
@click.option(
    "--size", default="480x320", show_default=True, callback=parse_size, help="WIDTHxHEIGHT."
)
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
def demo_data_cmd(
    out_dir: Path, cars: int, views: int, test_cars: int, size: tuple[int, int], seed: int
) -> None:
    """Generate a synthetic dataset in the exact Kaggle Carvana layout."""
    from pipeline.stages.demo_data import DemoSpec, write_demo

    spec = DemoSpec(cars=cars, views=views, test_cars=test_cars, size=size, seed=seed)
    with progress_bar("rendering", (cars + test_cars) * views) as advance:
        info = write_demo(out_dir, spec, advance)
    console.print(
        f"wrote {info['train']} labelled + {info['test']} test images ({size[0]}x{size[1]}) "
        f"to {out_dir}"
    )
