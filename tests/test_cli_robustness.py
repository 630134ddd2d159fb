"""Bad inputs and unwritable outputs of the command line: each one is a one-line error (exit 2, no traceback),
reported before the long work where the destination is known up front, or a warning with its reason.

Every test runs the CLI entry point in-process on tiny images, so the whole module takes seconds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hdrbench.cli import build_parser, main
from hdrbench.imaging.io import read_image, write_image

PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self").exists(),
                                reason="needs Linux /proc (a folder nothing can be created in)")


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _write_stack(folder: Path, codes: list[np.ndarray], prefix: str = "e") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(codes):
        p = folder / f"{prefix}{i}.png"
        assert cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


@pytest.fixture
def good_stack(tmp_path) -> list[str]:
    """Three 8-bit exposures (EV -2, 0, +2) of a random 8 x 8 scene through a 1/2.2 gamma: a valid stack."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 1.0, (8, 8, 3))
    imgs = [(np.clip(base * 2.0**ev, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8) for ev in (-2, 0, 2)]
    return _write_stack(tmp_path / "good", imgs)


# --- item: degenerate stacks and curves -----------------------------------------------------------------------
@pytest.mark.parametrize("value, kind", [(0, "all black"), (255, "all saturated")])
@pytest.mark.parametrize("command", [["merge", "-o", "OUT.hdr"], ["calibrate"], ["calibrate", "--method",
                                                                                   "mitsunaga-nayar"]])
def test_degenerate_stack_is_refused(tmp_path, capsys, value, kind, command):
    files = _write_stack(tmp_path / "flat", [np.full((6, 6, 3), value, np.uint8)] * 3)
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in command]
    assert main([*argv, "--stack", *files, "--evs", "-2,0,2"]) == 2
    err = _err(capsys)
    assert "degenerate" in err and kind in err and "channels r, g, b" in err
    assert not (tmp_path / "o.hdr").exists()


def test_uniform_stack_has_too_few_codes_for_the_polynomial(tmp_path, capsys):
    files = _write_stack(tmp_path / "u", [np.full((6, 6, 3), v, np.uint8) for v in (40, 80, 160)])
    # Three distinct codes determine a Debevec curve through three points, but not a degree-5 polynomial.
    assert main(["calibrate", "--stack", *files, "--evs", "-1,0,1", "--method", "mitsunaga-nayar"]) == 2
    assert "only 3 distinct well-exposed code(s) (40, 80, 160); at least 6" in _err(capsys)
    # With an assumed response a uniform stack still merges (to a uniform image); a clipped one does not.
    assert main(["merge", "--stack", *files, "--evs", "-1,0,1", "--crf", "srgb", "-o", str(tmp_path / "u.pfm")]) == 0
    assert np.ptp(read_image(tmp_path / "u.pfm").data) == 0  # every pixel the same value


def test_implausible_curve_is_a_warning_with_its_reason(good_stack, capsys):
    # Order 8 on 64 pixels over-fits: the polynomial folds near code 0 (measured: a decrease of ~0.1 % of
    # the range in channel g). The curve is still written; the warning says why it is doubtful.
    assert main(["calibrate", "--stack", *good_stack, "--evs", "-2,0,2", "--method", "mitsunaga-nayar",
                 "--order", "8"]) == 0
    err = _err(capsys)
    assert "warning: mitsunaga-nayar curve, channel g: the curve decreases between codes 0 and" in err
    assert "lower --order" in err


def test_curve_defects_and_degenerate_reasons_directly():
    from hdrbench.imaging.calibration.common import curve_defects, degenerate_stack_reasons

    z = torch.linspace(0, 1, 256, dtype=torch.float64)
    good = torch.stack([z, z**2.2, z**0.5])
    assert curve_defects(good) == []
    folded = good.clone()
    folded[1, 10:20] = folded[1, 10:20].flip(0)
    bad = curve_defects(folded)
    assert len(bad) == 1 and bad[0].startswith("channel g: the curve decreases between codes 10 and 19")
    nan = good.clone()
    nan[2, 5] = float("nan")
    assert curve_defects(nan) == ["channel b: the curve has NaN or Inf values"]
    negative = good - 0.01
    assert any("negative irradiance" in r for r in curve_defects(negative))
    stack = torch.zeros(2, 3, 3, 4, 4, dtype=torch.float64)
    stack[1] = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reasons = degenerate_stack_reasons(stack)
    assert reasons == [reasons[0]] and reasons[0].startswith("scene 0, channels r, g, b: every exposure is all black")


def test_a_nan_curve_is_an_error_not_a_write_failure():
    from hdrbench.commands.merge import report_curve
    from hdrbench.errors import InputError

    table = torch.linspace(0, 1, 256, dtype=torch.float64).repeat(3, 1)
    table[0, 7] = float("nan")
    with pytest.raises(InputError, match="the mitsunaga-nayar recovery failed: the curve has NaN or Inf values"):
        report_curve(table, "mitsunaga-nayar")


# --- item: minor defects -----------------------------------------------------------------------------------------
def test_score_pmap_extension_is_checked_before_scoring(tmp_path, capsys):
    hdr = tmp_path / "a.pfm"
    write_image(hdr, np.full((4, 4, 3), 0.5, np.float32))
    assert main(["score", "--test", str(hdr), "--reference", str(hdr), "--pmap", str(tmp_path / "x.xyz")]) == 2
    assert "--pmap" in _err(capsys) and not (tmp_path / "x.xyz").exists()


def test_linear_greyscale_and_bit_depth_mixtures_are_refused(tmp_path, good_stack, capsys):
    hdr = tmp_path / "lin.hdr"
    write_image(hdr, np.full((8, 8, 3), 0.5, np.float32))
    assert main(["merge", "--stack", good_stack[0], str(hdr), good_stack[2], "--evs", "-2,0,2", "-o",
                 str(tmp_path / "o.hdr")]) == 2
    assert f"{hdr} is a linear (hdr) image" in _err(capsys)
    grey = tmp_path / "grey.png"
    assert cv2.imwrite(str(grey), cv2.imread(good_stack[1], cv2.IMREAD_GRAYSCALE))
    assert main(["merge", "--stack", good_stack[0], str(grey), good_stack[2], "--evs", "-2,0,2", "-o",
                 str(tmp_path / "o.hdr")]) == 2
    assert "mixes greyscale (grey.png) and colour (e0.png, e2.png)" in _err(capsys)
    deep = tmp_path / "deep.png"
    assert cv2.imwrite(str(deep), cv2.imread(good_stack[1]).astype(np.uint16) * 257)
    assert main(["merge", "--stack", good_stack[0], str(deep), good_stack[2], "--evs", "-2,0,2", "-o",
                 str(tmp_path / "o.hdr")]) == 2
    err = _err(capsys)
    assert "mixes bit depths" in err and "deep.png (16-bit)" in err
    assert not (tmp_path / "o.hdr").exists()


def test_greyscale_expansion_and_alpha_are_reported(tmp_path, good_stack, capsys):
    grey = []
    for i, f in enumerate(good_stack):
        g = tmp_path / f"g{i}.png"
        assert cv2.imwrite(str(g), cv2.imread(f, cv2.IMREAD_GRAYSCALE))
        grey.append(str(g))
    assert main(["merge", "--stack", *grey, "--evs", "-2,0,2", "-o", str(tmp_path / "g.hdr")]) == 0
    err = _err(capsys)
    assert all(f"note: {g}: greyscale expanded to RGB" in err for g in grey)
    rgba = tmp_path / "rgba.png"
    img = cv2.imread(good_stack[1])
    assert cv2.imwrite(str(rgba), np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]))
    assert main(["score", "--test", str(rgba), "--reference", good_stack[1], "--metrics", "psnr"]) == 0
    assert f"note: {rgba}: alpha channel dropped" in _err(capsys)


def test_bad_preview_extension_is_refused_before_the_hdr_is_written(tmp_path, good_stack, capsys):
    out = tmp_path / "m.hdr"
    assert main(["merge", "--stack", *good_stack, "--evs", "-2,0,2", "-o", str(out), "--preview",
                 str(tmp_path / "p.bmp")]) == 2
    assert "--preview" in _err(capsys) and not out.exists()


def test_exr_output_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "x.exr", np.full((4, 4, 3), 0.25, np.float32))
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644  # 0o666 less the umask, like every other output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


SMALL = ["--dataset-option", "n_train=0", "--dataset-option", "n_test=1", "--resolution", "32", "--no-progress",
         "--stack-metrics", "psnr", "--hdr-metrics", "pu21-psnr"]


def test_an_evaluation_killed_before_the_leaderboard_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    import hdrbench.evaluate.leaderboard as lb

    original = lb.update_leaderboard

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill between the records and the leaderboard row

    monkeypatch.setattr(lb, "update_leaderboard", killed)
    runs = tmp_path / "runs"
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", *SMALL, "-o", str(runs)]) == 130
    visible = [p.name for p in runs.iterdir() if not p.name.startswith(".")]
    assert visible == []  # only the hidden .<run id>.partial staging folder remains
    assert [p.name for p in runs.iterdir()][0].endswith(".partial")
    monkeypatch.setattr(lb, "update_leaderboard", original)  # not undo(): that would drop conftest's isolation
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", *SMALL, "-o", str(runs)]) == 0
    finished = [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert len(finished) == 1 and (finished[0] / "records.csv").is_file()
    assert capsys.readouterr().out.strip() == str(finished[0])


# --- item: unwritable outputs --------------------------------------------------------------------------------------
@needs_proc
@pytest.mark.parametrize("argv, flag", [
    (["merge", "--stack", "MISSING_DIR", "-o", "/proc/x.hdr"], "--out /proc/x.hdr"),
    (["calibrate", "--stack", "MISSING_DIR", "--out", "/proc/c.csv"], "--out /proc/c.csv"),
    (["calibrate", "--stack", "MISSING_DIR", "--plot", "/proc/c.png"], "--plot /proc/c.png"),
    (["score", "--test", "MISSING.hdr", "--reference", "MISSING.hdr", "--pmap", "/proc/x.png"], "--pmap /proc/x.png"),
    (["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--out", "/proc/runs"], "--out /proc/runs"),
    (["train", "--method", "proposed", "--dataset", "synthetic", "--preset", "tiny", "-o", "/proc/t"], "--out /proc/t"),
    (["tables", "--records", "MISSING_DIR", "-o", "/proc/t"], "--out /proc/t"),
])
def test_unwritable_output_fails_first_with_a_message(argv, flag, capsys):
    # The inputs do not exist: an error about the output proves it was checked before anything was read.
    assert main(argv) == 2
    err = _err(capsys)
    assert flag in err and "does not accept new files" in err


@needs_proc
def test_unwritable_results_folder_fails_before_scoring(tmp_path, monkeypatch, capsys):
    import hdrbench.evaluate.harness as harness

    monkeypatch.setenv("HDRBENCH_RESULTS", "/proc/r")
    monkeypatch.setattr(harness, "get_method", lambda *a, **k: pytest.fail("scoring started"))
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", *SMALL, "-o",
                 str(tmp_path / "runs")]) == 2
    assert "results folder (HDRBENCH_RESULTS) /proc/r" in _err(capsys)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@needs_proc
def test_run_checks_its_folders_before_training(monkeypatch, capsys):
    import hdrbench.api as api

    monkeypatch.setenv("HDRBENCH_RESULTS", "/proc/r")
    monkeypatch.setattr(api, "run", lambda *a, **k: pytest.fail("training started"))
    assert main(["run", "--method", "proposed", "--dataset", "synthetic", "--preset", "tiny", "--no-progress"]) == 2
    assert "results folder (HDRBENCH_RESULTS) /proc/r" in _err(capsys)


def test_file_in_the_way_of_an_output_folder(tmp_path, good_stack, capsys):
    blocker = tmp_path / "existing_file.hdr"
    blocker.write_bytes(b"x")
    assert main(["merge", "--stack", *good_stack, "--evs", "-2,0,2", "-o", str(blocker / "x.hdr")]) == 2
    assert f"{blocker} is a file, not a folder" in _err(capsys)
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", *SMALL, "-o", str(blocker)]) == 2
    assert f"--out {blocker} is a file, not a folder" in _err(capsys)


def test_atomic_write_errors_name_the_destination(tmp_path):
    from hdrbench.atomic import atomic_write_text
    from hdrbench.errors import OutputError

    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*f/g\.txt"):
        atomic_write_text(tmp_path / "f" / "g.txt", "y")
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="existing folder"):
        atomic_write_text(tmp_path / "d", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no temporary file left behind


# --- item: bad options ------------------------------------------------------------------------------------------
def test_bad_options_are_clear_errors(tmp_path, good_stack, capsys):
    assert main(["calibrate", "--stack", *good_stack, "--evs", "-2,0,2", "--plot", str(tmp_path / "out.xyz")]) == 2
    assert "--plot" in _err(capsys) and not (tmp_path / "out.xyz").exists()
    assert main(["merge", "--stack", *good_stack, "--evs", "0,2000,-2000", "-o", str(tmp_path / "o.hdr")]) == 2
    assert "--evs 0,2000,-2000: exposure values must be finite stops within +-64" in _err(capsys)
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--dataset-option", "n_tset=4"]) == 2
    assert "unknown dataset option 'n_tset' for dataset 'synthetic'; did you mean 'n_test'?" in _err(capsys)
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--method-option", "linearise=x"]) == 2
    assert "unknown method option 'linearise' for method 'ldr-linear'; did you mean 'linearize'?" in _err(capsys)
    assert main(["merge", "--stack", *good_stack, "--evs", "-2,0,2", "-o", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is an existing folder" in _err(capsys)


@pytest.mark.parametrize("device, hint", [("cdua", "did you mean 'cuda'"), ("gpu", "did you mean 'cuda'"),
                                          ("cuda:x", "expected cpu, cuda, cuda:N or mps")])
def test_bad_device_names(device, hint, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--device", device])
    assert exc.value.code == 2 and hint in _err(capsys)
    from hdrbench.errors import HdrbenchError
    from hdrbench.options import parse_device

    with pytest.raises(HdrbenchError, match=hint):
        parse_device(device)
    assert parse_device(" CUDA:1 ") == "cuda:1" and parse_device("cpu") == "cpu"


# --- item: unclear messages -------------------------------------------------------------------------------------
def test_opencv_decoder_lines_are_silenced(tmp_path, capfd):
    broken_png = tmp_path / "broken.png"
    broken_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 32)
    with pytest.raises(Exception, match="truncated or corrupt"):
        read_image(broken_png)
    assert "[ERROR" not in capfd.readouterr().err  # OpenCV writes to the file descriptor itself


def test_messages_name_what_is_wrong(tmp_path, capsys):
    assert main(["merge", "--stack", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o.hdr")]) == 2
    assert f"--stack {tmp_path / 'nowhere'}: no such file or folder" in _err(capsys)
    bad_exr = tmp_path / "bad.exr"
    bad_exr.write_bytes(b"garbage")
    with pytest.raises(Exception, match="not an EXR file"):
        read_image(bad_exr)
    empty = tmp_path / "empty_records"
    empty.mkdir()
    assert main(["tables", "--records", str(empty), "-o", str(tmp_path / "t")]) == 2
    assert f"no record files found in {empty}" in _err(capsys)
    from hdrbench.metrics.stack import ssim

    with pytest.raises(Exception, match="--allow-small-window"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), data_range=1.0)


def test_dataset_check_messages(tmp_path, shared_data, capsys):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("Chromaticities_Rec709.hdr", "ScanLines_Cannon.hdr"):  # both hash into the train split
        shutil.copy(shared_data / "hdr" / name, folder)
    (folder / "broken.exr").write_bytes(b"x")
    assert main(["datasets", "check", "--dataset", f"hdr-folder:{folder}"]) == 1
    out = capsys.readouterr().out
    assert out.count("broken.exr: unreadable (HDR reference)") == 1  # once, though in split 'all' and its own
    (folder / "broken.exr").unlink()
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", f"hdr-folder:{folder}", "--no-progress"]) == 2
    assert "split 'test' is empty; split 'all' has 2 scene(s): use --split all" in _err(capsys)
    assert main(["datasets", "check", "--dataset", f"hdr-folder:{tmp_path / 'two' / 'Chromaticities_Rec709.hdr'}"]) == 1
    assert "dataset root is a file, not a folder" in capsys.readouterr().out


def test_failed_scenes_are_listed_on_the_console(tmp_path, monkeypatch, capsys):
    import hdrbench.evaluate.harness as harness

    original = harness._SceneScorer.hdr_rows

    def failing(self, pairs):
        return [[r._replace(value=float("nan"), error="injected failure") for r in rows]
                for rows in original(self, pairs)]

    monkeypatch.setattr(harness._SceneScorer, "hdr_rows", failing)
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", *SMALL, "-o", str(tmp_path),
                 "--no-leaderboard"]) == 0
    err = _err(capsys)
    assert "warning: 1 of 1 scene(s) had failures" in err and "injected failure" in err


# --- item: dataset slugs by contents ------------------------------------------------------------------------------
def test_folder_datasets_are_named_by_their_contents(tmp_path, shared_data):
    from hdrbench.data.base import dataset_slug
    from hdrbench.evaluate.leaderboard import leaderboard_path
    from hdrbench.report.build import slug

    a, b = tmp_path / "x" / "hdr", tmp_path / "y" / "hdr"
    for d in (a, b):
        d.mkdir(parents=True)
        shutil.copy(shared_data / "hdr" / "ScanLines_Cannon.hdr", d)
    name_a, name_b = f"hdr-folder:{a}", f"hdr-folder:{b}"
    assert dataset_slug(name_a) == dataset_slug(name_b)  # same photographs, another path
    assert dataset_slug(name_a).startswith("hdr-folder-hdr-")
    assert len(dataset_slug(name_a)) == len("hdr-folder-hdr-") + 8  # folder name and 8 hex digits
    assert slug(name_a) == dataset_slug(name_a) and leaderboard_path(name_a).name == f"leaderboard-{slug(name_a)}.csv"
    shutil.copy(shared_data / "hdr" / "Chromaticities_Rec709.hdr", b)
    assert dataset_slug(name_a) != dataset_slug(name_b)  # other contents, other name
    (b / "Chromaticities_Rec709.hdr").unlink()
    (b / "ScanLines_Cannon.hdr").write_bytes((a / "ScanLines_Cannon.hdr").read_bytes()[:-1] + b"\0")
    assert dataset_slug(name_a) != dataset_slug(name_b)  # same name and size, other bytes
    assert "-path-" in dataset_slug(f"hdr-folder:{tmp_path / 'absent'}")


def test_committed_hdr_folder_results_carry_the_content_slug(shared_data):
    from hdrbench.data.base import dataset_slug
    from hdrbench.paths import REPO_ROOT

    slug = dataset_slug(f"hdr-folder:{shared_data / 'hdr'}")
    assert (REPO_ROOT / "results" / f"leaderboard-{slug}.csv").is_file()
    assert (REPO_ROOT / "results" / "records" / slug).is_dir()
    assert (REPO_ROOT / "results" / "figures" / f"correlation-{slug}.png").is_file()


# --- item: -o for --out ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["merge", "--stack", "s", "-o", "X"], ["calibrate", "-o", "X"], ["score", "--test", "t", "--reference", "r", "-o",
                                                                      "X"],
    ["evaluate", "--method", "m", "--dataset", "d", "-o", "X"], ["train", "--method", "m", "--dataset", "d", "-o", "X"],
    ["tables", "-o", "X"], ["report", "-o", "X"], ["bench", "merge", "-o", "X"],
])
def test_short_out_option(argv):
    assert build_parser().parse_args(argv).out == "X"
