"""The ``pipeline`` command: parse -> load config -> call one stage -> print a rich summary.

The Click group is assembled here from the command modules (``steps``: the main job; ``data``:
making and importing data; ``runs``: whole runs; ``results``: looking at results), which import
nothing from this package but ``common``.
"""

from __future__ import annotations

import click

from pipeline import __version__
from pipeline.cli import data, results, runs, steps
from pipeline.errors import PipelineError
from pipeline.fsio import is_write_error, write_error


def one_line(err: PipelineError) -> str:
    """The message of ``err`` as one line. A PipelineError re-raised by a DataLoader or a process
    pool arrives with the worker's traceback in front of it; its last line holds the message."""
    text = str(err).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1].strip()
    return last.split(f"{PipelineError.__module__}.{PipelineError.__name__}: ", 1)[-1]


class PipelineGroup(click.Group):
    """Prints a PipelineError as one line (``Error: ...``) with exit code 1, no traceback; so are
    the writes the file system refuses anywhere below (full disk, read-only, no permission),
    naming the path."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as err:
            raise click.ClickException(one_line(err)) from None
        except OSError as err:
            if not is_write_error(err):
                raise
            raise click.ClickException(str(write_error(err))) from None


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segfuse")
def cli() -> None:
    """segfuse: K-fold segmentation for competitions
    (folds -> train -> predict -> tune -> ensemble)."""


for _command in (
    steps.config_cmd,
    steps.folds_cmd,
    steps.train_cmd,
    steps.predict_cmd,
    steps.tune_cmd,
    steps.ensemble_cmd,
    steps.validate_cmd,
    steps.store_group,
    data.import_annotations_cmd,
    data.driving_data_cmd,
    data.demo_data_cmd,
    runs.summary_cmd,
    runs.demo_cmd,
    runs.pseudo_cmd,
    runs.compare_cmd,
    runs.run_cmd,
    results.show_cmd,
    results.qa_cmd,
    results.report_cmd,
    results.video_cmd,
    results.serve_cmd,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pipeline")
