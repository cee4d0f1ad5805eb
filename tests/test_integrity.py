"""Issue 23, items 6-14: nothing is written outside its folder or half-written,
what a user reads is true.

One test (or parametrized family) per item: CLI names stay inside their folder (6); a submission
that fails validation never appears under its name (7); written files honour the umask (8); serve's
pixel limit and its timeout for unfinished uploads (9); two files of one id are an error (10);
refused writes are one line naming the path, and a rerun resumes (11); out-of-range numbers are
one-line errors (12); a recipe's step configs are checked before its first step (13); the refit's
epoch line, progress lines in a log and the pseudo rule's one default (14).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.console import RichReporter, console
from pipeline.fsio import atomic_write_bytes, atomic_write_text, make_temp
from pipeline.train.loop import EpochRecord
from tests.conftest import copy_project, make_folder_dataset, tiny_train_config, write_config
from tests.test_ensemble import predicted  # noqa: F401  (fixture: tiny_project with both stores)

RUN = "tiny_64x96"
ENSEMBLE = f"""name: tiny-ens
members: [{{run: {RUN}}}, {{run: tiny2_64x96}}]
weights: equal
workers: 0
qa: false
"""


def invoke(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result, code: int = 1) -> str:
    """The last output line, which must be the one ``Error: ...`` line; no traceback anywhere."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and not isinstance(
        result.exception, (OSError, OverflowError)
    )
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    return last


def hidden(folder: Path) -> list[str]:
    """Temp files left behind (``.<name>.<pid>.<random>.tmp``)."""
    return sorted(p.name for p in folder.rglob(".*")) if folder.is_dir() else []


@pytest.fixture()
def project(predicted, tmp_path, monkeypatch):  # noqa: F811
    work = copy_project(predicted, tmp_path / "work")
    monkeypatch.chdir(work)
    write_config(work / "ens.yaml", ENSEMBLE)
    return work


# ---- 6: names from the CLI stay inside their folder -------------------------------------------
@pytest.mark.parametrize(
    "args, what",
    [
        (["ensemble", "ens.yaml", "--name", "../../x"], "ensemble '../../x'"),
        (
            ["ensemble", "ens.yaml", "--name", "{outside}/x", "--overwrite"],
            "ensemble '{outside}/x'",
        ),
        (["tune", "--run", "../../x"], "run '../../x'"),
        (["tune", "--ensemble", "{outside}/x"], "ensemble '{outside}/x'"),
        (["qa", "../x"], "ensemble '../x'"),
        (["pseudo", "../x", "--round", "1"], "ensemble '../x'"),
        (["report", "{outside}/x"], "run '{outside}/x'"),
        (["summary", "../x"], "run '../x'"),
        (["compare", RUN, "../x"], "run '../x'"),
        (["show", "--run", "..", "--random", "1"], "run '..'"),
        (["serve", "../runs/x", "--port", "0"], "run '../runs/x'"),
    ],
)
def test_cli_names_stay_inside_their_folder(project, tmp_path, args, what):
    outside = tmp_path / "outside"
    outside.mkdir()
    args = [a.format(outside=outside) for a in args]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts)
    line = one_error_line(invoke(*args))
    assert line.startswith(
        f"Error: {what.format(outside=outside)}: must be a file-name-safe word"
    ), line
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts)
    assert after == before and not (project / "submissions").exists()
    assert not (project / "artifacts" / "ensembles").exists()


# ---- 7: a submission appears under its name only complete, valid and with its sidecar ----------
def test_a_submission_failing_validation_is_never_renamed_into_place(project, monkeypatch):
    import pipeline.stages.ensemble as stage

    with monkeypatch.context() as patch:
        patch.setattr(stage, "validate_file", lambda *a, **k: ["line 2: planted problem"])
        line = one_error_line(invoke("ensemble", "ens.yaml"))
    subs = project / "submissions"
    assert line == (
        "Error: submissions/tiny-ens.csv: the written submission failed validation: line 2: "
        "planted problem; nothing was written under that name"
    )
    assert (
        sorted(p.name for p in subs.iterdir()) == []
    )  # no CSV, no sidecar, no ledger, no temp file
    result = invoke("ensemble", "ens.yaml")  # no --overwrite needed: nothing was there
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in subs.iterdir()) == ["ledger.csv", "tiny-ens.csv", "tiny-ens.json"]


# ---- 8: written files honour the umask ---------------------------------------------------------
@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode",
    [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)],
)
def test_atomic_writes_honour_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_bytes(tmp_path / "b.bin", b"x", durable=False)
        folder = make_temp(tmp_path / "masks", directory=True)
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(file_mode)
    assert oct((tmp_path / "b.bin").stat().st_mode & 0o777) == oct(file_mode)
    assert oct(folder.stat().st_mode & 0o777) == oct(dir_mode)


def test_every_output_of_an_ensemble_is_readable_by_others(project):
    with umask(0o022):
        result = invoke("ensemble", "ens.yaml")
    assert result.exit_code == 0, result.output
    outputs = [p for p in (project / "submissions").iterdir()]
    outputs += [
        p for p in (project / "artifacts" / "ensembles" / "tiny-ens").rglob("*") if p.is_file()
    ]
    modes = {str(p.relative_to(project)): oct(p.stat().st_mode & 0o777) for p in outputs}
    assert len(modes) > 5 and set(modes.values()) == {oct(0o644)}, modes


# ---- 9: serve refuses huge images before decoding, and closes unfinished uploads ---------------
@pytest.fixture(scope="module")
def run_model(tiny_project):
    from pipeline.paths import Layout
    from pipeline.predict.runmodel import RunModel

    return RunModel.load(Layout(tiny_project).run(RUN), device="cpu", batch_size=1)


@contextlib.contextmanager
def serving(model, **limits):
    from pipeline.stages.serve import build_server

    server = build_server(model, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    assert not thread.is_alive()


def post_image(port: int, name: str, data: bytes) -> tuple[int, dict]:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serve_refuses_an_image_over_the_pixel_limit_before_decoding(run_model, monkeypatch):
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # ~10 kB on the wire, 81 MP decoded
    assert len(buf.getvalue()) < 20_000

    def never(*_args, **_kwargs):
        raise AssertionError("the image was decoded")

    import pipeline.review.server as app_module

    monkeypatch.setattr(app_module, "to_rgb8", never)
    with serving(run_model) as port:  # the default limit
        status, body = post_image(port, "bomb.png", buf.getvalue())
    assert status == 413
    assert body["error"] == (
        "field 'image' (bomb.png): 9000x9000 = 81000000 pixels is over the limit of "
        "16777216; send a smaller image or restart with a larger --max-pixels"
    )


def test_serve_closes_uploads_that_never_finish_and_keeps_answering(run_model):
    with serving(run_model, timeout_s=1, threads=1) as port:
        stalled = []
        for _ in range(20):  # more half-sent requests than worker threads
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 100000\r\n\r\n--b\r\n"
            )
            stalled.append(sock)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200  # the stalled uploads hold no thread
        started = time.monotonic()
        closed = [sock.recv(1024) for sock in stalled]  # b"" once the server closed it
        assert closed == [b""] * 20 and time.monotonic() - started < 8
        for sock in stalled:
            sock.close()


# ---- 10: two files of one id --------------------------------------------------------------------
@pytest.mark.parametrize("split", ["images", "test"])
def test_two_images_with_one_stem_are_an_error_naming_both(tmp_path, split):
    root = make_folder_dataset(tmp_path / "data")
    (root / "test").mkdir()
    for stem in ("seq0_000", "seq1_001") if split == "test" else ():
        Image.open(root / "images" / f"{stem}.png").save(root / "test" / f"{stem}.png")
    first = root / split / "seq0_000.png"
    Image.open(first).convert("RGB").save(root / split / "seq0_000.jpg")
    cfg = write_config(
        tmp_path / "f.yaml",
        f"""name: f
dataset: {{layout: folder, name: f, root: {root}, image_glob: "*", test_dir: test}}
folds: {{k: 2}}
""",
    )
    with contextlib.chdir(tmp_path):
        line = one_error_line(invoke("folds", cfg))
    assert line == (
        f"Error: {root / split / 'seq0_000.jpg'}: same image id 'seq0_000' as {first} (an id is "
        "the file name without its extension); rename or remove one of them"
    )
    assert not (tmp_path / "folds").exists()


# ---- 11: refused writes: one line naming the path, nothing half-written, a rerun resumes --------
def fail_fsync_of(name: str, code: int, monkeypatch) -> None:
    """os.fsync raises ``code`` for files whose (temp) name holds ``name``: a disk that fills up."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_during_train_is_one_line_and_a_rerun_resumes(
    tiny_carvana, tmp_path, monkeypatch
):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana, epochs=2)
    monkeypatch.chdir(tmp_path)
    assert invoke("folds", cfg).exit_code == 0
    with monkeypatch.context() as patch:
        fail_fsync_of("model.pt", errno.ENOSPC, patch)
        line = one_error_line(invoke("train", cfg, "--fold", "0"))
    fold = Path("artifacts") / "runs" / RUN / "fold0"
    assert line == (
        f"Error: {fold / 'model.pt'}: No space left on device (ENOSPC); free disk space (or point "
        "the project at a larger disk) and rerun; finished work is kept"
    )
    assert not (fold / "model.pt").exists() and hidden(fold) == []
    result = invoke("train", cfg, "--fold", "0")
    assert result.exit_code == 0, result.output
    assert (fold / "model.pt").is_file() and (fold / "summary.json").is_file()


@pytest.mark.parametrize(
    "code, reason, fix",
    [
        (errno.EROFS, "Read-only file system (EROFS)", "the file system is read-only"),
        (
            errno.EACCES,
            "Permission denied (EACCES)",
            "permission denied; fix the file's or folder's owner",
        ),
        (errno.ENOSPC, "No space left on device (ENOSPC)", "free disk space"),
    ],
)
def test_refused_writes_of_any_command_are_one_line(
    tiny_carvana, tmp_path, monkeypatch, code, reason, fix
):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana)
    monkeypatch.chdir(tmp_path)
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and "tiny.csv" in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    line = one_error_line(invoke("folds", cfg))
    assert line.startswith(f"Error: folds/tiny.csv: {reason}; {fix}"), line
    assert hidden(tmp_path / "folds") == [] and not (tmp_path / "folds" / "tiny.csv").exists()


def test_a_full_disk_while_streaming_a_submission_leaves_nothing(project, monkeypatch):
    fail_fsync_of("tiny-ens.csv", errno.ENOSPC, monkeypatch)
    line = one_error_line(invoke("ensemble", "ens.yaml"))
    assert line.startswith("Error: submissions/tiny-ens.csv: No space left on device (ENOSPC)"), (
        line
    )
    assert sorted(p.name for p in (project / "submissions").iterdir()) == []


def test_the_ledger_never_keeps_half_a_row(tmp_path, monkeypatch):
    from pipeline.output.writers import LEDGER_COLUMNS, append_ledger

    ledger = tmp_path / "ledger.csv"
    append_ledger(ledger, ["a"] * len(LEDGER_COLUMNS))
    before = ledger.read_bytes()
    fail_fsync_of("ledger.csv", errno.ENOSPC, monkeypatch)
    with pytest.raises(Exception, match=f"{ledger}: No space left on device"):
        append_ledger(ledger, ["b"] * len(LEDGER_COLUMNS))
    assert ledger.read_bytes() == before


# ---- 12: numbers out of range ------------------------------------------------------------------
def test_validate_an_rle_number_too_large_for_any_image(tmp_path):
    (tmp_path / "sample.csv").write_text("img,rle_mask\na.jpg,\n")
    (tmp_path / "s.csv").write_text("img,rle_mask\na.jpg,99999999999999999999999 1\n")
    line = one_error_line(
        invoke(
            "validate",
            tmp_path / "s.csv",
            "--sample",
            tmp_path / "sample.csv",
            "--format",
            "carvana",
            "--size",
            "4x4",
        )
    )
    assert line == (
        f"Error: {tmp_path / 's.csv'}: 1 problem(s); first: line 2: id 'a.jpg': value "
        "99999999999999999999999 is larger than any image "
        "(RLE numbers are pixel positions and counts)"
    )


@pytest.mark.parametrize(
    "value, message",
    [
        ("-5", "key 'min_area': Input should be greater than or equal to 0, got -5"),
        (".nan", "key 'min_area': Input should be a finite number, got nan"),
        (".inf", "key 'min_area': Input should be a finite number, got inf"),
    ],
)
def test_ensemble_min_area_is_range_checked(tmp_path, value, message):
    cfg = write_config(tmp_path / "e.yaml", ENSEMBLE + f"min_area: {value}\n")
    assert one_error_line(invoke("config", cfg)) == f"Error: {cfg}: {message}"


@pytest.mark.parametrize("setting", ["optim.lr=.nan", "train.ema=.nan", "loss.border_factor=.inf"])
def test_no_config_number_is_nan_or_infinite(tiny_carvana, tmp_path, setting):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana)
    assert "finite number" in one_error_line(invoke("config", cfg, "--set", setting))


# ---- 13: a recipe's step configs are checked before its first step ------------------------------
def test_a_typo_in_the_last_step_config_fails_before_the_first_step(
    tiny_carvana, tmp_path, monkeypatch
):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana, epochs=1)
    ens = write_config(tmp_path / "e.yaml", "name: e\nmembers: [{run: x}]\ntreshold: 0.5\n")
    recipe = write_config(
        tmp_path / "r.yaml",
        f"name: r\nsteps:\n  - folds: {cfg}\n  - train: {cfg}\n"
        f"  - ensemble: {ens}\n    members: trained\n",
    )
    monkeypatch.chdir(tmp_path)
    expected = (
        f"Error: {recipe}: step 3 (ensemble: {ens}): unknown key 'treshold'; valid keys here: name,"
    )
    for command in ("config", "run"):
        assert one_error_line(invoke(command, recipe)).startswith(expected)
    assert not (tmp_path / "folds").exists() and not (tmp_path / "artifacts").exists()
    bad_train = write_config(
        tmp_path / "r2.yaml",
        f"name: r\nsteps:\n  - folds: {cfg}\n  - train: {cfg}\n    set: [train.epochs=0]\n",
    )
    assert "step 2 (train: " in one_error_line(invoke("run", bad_train))
    assert not (tmp_path / "folds").exists()


# ---- 14: what a user reads is true ---------------------------------------------------------------
def test_the_refit_epoch_line_says_there_was_no_validation():
    nan = float("nan")
    reporter = RichReporter(RUN, "full")
    reporter.epochs = 3
    with console.capture() as captured:
        reporter.end_epoch(EpochRecord(2, 0.25, nan, nan, 1e-3, 4.0, 12.0, nan, {}), best=True)
    line = captured.get().strip()
    assert line == (
        f"{RUN} full-data refit epoch 2/3: train 0.2500  no validation images (full-data refit); "
        "model.pt = this epoch  lr 1.0e-03  12.0 img/s  4s"
    )
    reporter = RichReporter(RUN, 0)
    reporter.epochs = 3
    with console.capture() as captured:
        reporter.end_epoch(EpochRecord(2, 0.25, 0.5, 0.75, 1e-3, 4.0, 12.0, 0.75, {}), best=True)
    assert (
        captured.get()
        .strip()
        .endswith("val 0.5000  dice 0.7500  lr 1.0e-03  12.0 img/s  4s *best*")
    )


def test_predict_prints_progress_lines_without_a_terminal(tiny_project, tmp_path, monkeypatch):
    import pipeline.console as console_module

    work = copy_project(tiny_project, tmp_path / "w")
    monkeypatch.chdir(work)
    monkeypatch.setattr(console_module, "LOG_EVERY_S", 0.0)
    assert not console.is_terminal
    result = invoke("predict", "tiny.yaml", "--split", "oof", "--tta", "none")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{RUN} oof: ")]
    assert len(lines) >= 3 and lines[0].startswith(f"{RUN} oof: ") and "/24 (" in lines[0]
    assert lines[-1].startswith(f"{RUN} oof: 24/24 (100%) done in ")


def test_the_pseudo_rule_has_one_default_tau():
    from pipeline.cli.runs import pseudo_cmd
    from pipeline.config.recipe import PseudoStep
    from pipeline.decide.pseudo_labels import PseudoRule

    cli_tau = next(p.default for p in pseudo_cmd.params if p.name == "tau")
    assert cli_tau == PseudoStep.model_fields["tau"].default == PseudoRule().tau == 0.15


def test_progress_lines_are_periodic():
    from pipeline.console import LogProgress

    now, lines = [0.0], []
    progress = LogProgress("predict", 10, 30.0, lines.append, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 10.0
        progress(1)
    progress.done()
    assert lines == [
        "predict: 3/10 (30%), 30s, eta 70s",
        "predict: 6/10 (60%), 60s, eta 40s",
        "predict: 9/10 (90%), 90s, eta 10s",
        "predict: 10/10 (100%) done in 100s",
    ]
