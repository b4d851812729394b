"""``pcseg.submit check`` on hostile or broken zips, built here as real files: every problem is a
finding of the report (exit 1), usage errors exit 2, nothing raises, and an oversized entry is
refused by its declared size before it is decompressed."""
from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from pcseg import analyze as analyze_cli
from pcseg import submit as submit_cli
from pcseg import test as test_cli
from pcseg.data.scannet_raw import RawDataError
from pcseg.eval.submission import check_submission, mesh_path, ply_vertex_count
from tests.conftest import checker_problems, write_zip as _zip

MILLIONS = 5_000_000


@pytest.fixture(scope="module")
def release(two_scene_split) -> tuple[Path, Path, dict[str, str]]:
    return two_scene_split


def _check(path: Path, release, capsys) -> list[str]:
    """The problems of ``path``, through the CLI (exit 1, report on stderr, no traceback) and the function."""
    raw, splits, _ = release
    return checker_problems(path, raw, splits, capsys)


def test_absurd_lines_are_findings(release, tmp_path, capsys) -> None:
    _, _, texts = release
    a, b = sorted(texts)
    lines = texts[a].splitlines()
    lines[0] = "99999999999999999999"  # was OverflowError
    lines[1] = "-5"
    lines[2] = "1" * 5000  # beyond int()'s digit limit
    lines[4] = "12.5"
    lines[5] = ""  # an empty line in the middle
    lines[6] = "1_0"  # int() reads 10
    good_b = texts[b]
    probs = _check(_zip(tmp_path / "ids.zip", {f"{a}.txt": "\n".join(lines) + "\n", f"{b}.txt": good_b}),
                   release, capsys)
    assert len(probs) == 2, probs
    ints = next(p for p in probs if "invalid label id" in p)
    assert "3 invalid label id(s)" in ints and "line 1: 99999999999999999999" in ints and "line 2: -5" in ints
    assert "line 3: '11111111111111111111...'" in ints
    words = next(p for p in probs if "hold no integer" in p)
    assert "3 line(s) hold no integer" in words and "line 5: '12.5'" in words and "line 6: empty line" in words


def test_crlf_and_blank_padding_are_accepted(release, tmp_path) -> None:
    raw, splits, texts = release
    members = {f"{s}.txt": t.replace("\n", "\r\n") for s, t in texts.items()}
    assert check_submission(_zip(tmp_path / "crlf.zip", members), raw, "val", splits).ok


def test_a_huge_entry_is_refused_by_its_size_unread(release, tmp_path, capsys) -> None:
    _, _, texts = release
    a, b = sorted(texts)
    path = _zip(tmp_path / "bomb.zip", {f"{a}.txt": "1\n" * MILLIONS, f"{b}.txt": texts[b]})
    assert path.stat().st_size < 100_000  # a small zip ...
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(f"{a}.txt").file_size == 2 * MILLIONS  # ... of a 10 MB entry
    tracemalloc.start()
    probs = _check(path, release, capsys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # the 10 MB entry was never decompressed (reading it took 415 MB)
    (p,) = probs
    assert f"{a}.txt" in p and f"{2 * MILLIONS} bytes uncompressed" in p and "not read" in p


def _lie_about_size(path: Path, name: str, size: int) -> None:
    """Overwrite the declared uncompressed size of ``name`` in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        (name_len,) = struct.unpack_from("<H", data, central + 28)
        if data[central + 46:central + 46 + name_len] == name.encode():
            struct.pack_into("<I", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_a_header_that_lies_about_the_size_is_read_with_a_bound(release, tmp_path, capsys) -> None:
    raw, _, texts = release
    a, b = sorted(texts)
    path = _zip(tmp_path / "liar.zip", {f"{a}.txt": "1\n" * MILLIONS, f"{b}.txt": texts[b]})
    small = 2 * ply_vertex_count(mesh_path(raw, a, "val"))  # "1\n" per vertex: within any bound
    _lie_about_size(path, f"{a}.txt", small)  # declared: within the bound; held: 10 MB
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(f"{a}.txt").file_size == small
    tracemalloc.start()
    probs = _check(path, release, capsys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak
    (p,) = probs
    assert f"{a}.txt" in p and "cannot be read from the zip" in p


def test_files_that_are_not_zips(release, tmp_path, capsys) -> None:
    _, _, texts = release
    whole = _zip(tmp_path / "whole.zip", {f"{s}.txt": t for s, t in texts.items()}).read_bytes()
    for name, data in (("text.zip", b"hello"), ("empty.zip", b""), ("cut.zip", whole[: len(whole) // 2]),
                       ("magic.zip", b"PK\x05\x06" + b"\xff" * 18)):
        (tmp_path / name).write_bytes(data)
        (p,) = _check(tmp_path / name, release, capsys)
        assert p.startswith("cannot open") and name in p


def test_entry_names_and_duplicates(release, tmp_path, capsys) -> None:
    _, _, texts = release
    a, b = sorted(texts)
    members = [(f"../{a}.txt", texts[a]), (f"sub/{a}.txt", texts[a]), (f"/{a}.txt", texts[a]),
               (f"sub\\{a}.txt", texts[a]), ("scene9999_99.txt", texts[a]), (f"{a}.TXT", texts[a]),
               (f"{a}.txt", texts[a]), (f"{a}.txt", texts[a]), (f"{b}.txt", texts[b])]
    probs = _check(_zip(tmp_path / "names.zip", members), release, capsys)
    assert len(probs) == 7, probs
    assert any("leaves the zip's root" in p and f"../{a}.txt" in p for p in probs)
    assert sum("inside a folder" in p for p in probs) == 2
    assert any("absolute path" in p for p in probs)
    assert any("'scene9999_99' is not a scene of the val split" in p for p in probs)
    assert any("only <scene>.txt files are allowed" in p for p in probs)
    assert any(f"'{a}.txt' appears more than once" in p for p in probs)


def test_compression_that_cannot_be_bounded_is_a_finding(release, tmp_path, capsys) -> None:
    _, _, texts = release
    a, b = sorted(texts)
    path = tmp_path / "bz2.zip"
    _zip(path, {f"{a}.txt": texts[a]}, method=zipfile.ZIP_BZIP2)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{b}.txt", texts[b])
    (p,) = _check(path, release, capsys)
    assert f"{a}.txt" in p and "compression method 12" in p and "deflate" in p


def test_vertex_counts_a_ply_header_cannot_mean(release, tmp_path, capsys) -> None:
    ply = tmp_path / "m.ply"
    ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex -5\nend_header\n")
    with pytest.raises(RawDataError, match="element vertex N"):
        ply_vertex_count(ply)
    ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1000000000000000000000000\nend_header\n0 0 0\n")
    with pytest.raises(RawDataError, match="declares 1000000000000000000000000 vertices but the file holds only"):
        ply_vertex_count(ply)  # the size limit of the scene's prediction file derives from the count


def test_report_prints_a_bounded_number_of_problems(release, tmp_path) -> None:
    raw, splits, texts = release
    members = [(f"extra{i}.txt", "1\n") for i in range(200)] + [(f"{s}.txt", t) for s, t in texts.items()]
    report = check_submission(_zip(tmp_path / "many.zip", members), raw, "val", splits)
    assert len(report.problems) == 200
    text = report.format()
    assert "... and 150 more" in text and text.count("\n  - ") == 50


# --------------------------------------------------------------------------- usage errors: exit 2


def test_check_usage_errors_exit_2(release, tmp_path, capsys) -> None:
    raw, splits, texts = release
    good = _zip(tmp_path / "good.zip", {f"{s}.txt": t for s, t in texts.items()})
    for argv, words in (
            (["check", str(tmp_path / "none.zip"), "--raw", str(raw)], "the submission zip"),
            (["check", str(tmp_path), "--raw", str(raw)], "is not a file (it is a folder)"),
            (["check", str(good), "--raw", str(tmp_path / "noraw")], "--raw"),
            (["check", str(good), "--raw", str(good)], "is not a folder"),
            (["check", str(good), "--raw", str(raw), "--splits", str(tmp_path / "nosplits")], "--splits"),
            (["check", str(good), "--raw", str(tmp_path)], "split list")):  # a folder without the lists
        assert submit_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)


def test_eval_usage_errors_exit_2_before_any_scene(release, tmp_path, capsys) -> None:
    raw, splits, texts = release
    pred = tmp_path / "pred"
    pred.mkdir()
    for s, t in texts.items():
        (pred / f"{s}.txt").write_text(t)
    common = [str(pred), "--raw", str(raw), "--split", "val", "--splits", str(splits)]
    not_json = tmp_path / "manifest.json"
    not_json.write_text("{")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"x": "caf\xe9"}')
    no_hist = tmp_path / "nohist.json"
    no_hist.write_text(json.dumps({"class_histogram": {"segment20": {"counts": [1] * 20}}}))
    out_file = tmp_path / "out.txt"
    out_file.write_text("")
    for extra, words in ((["--manifest", str(not_json)], "is not JSON"), (["--manifest", str(latin1)], "not UTF-8"),
                         (["--manifest", str(no_hist)], "class_histogram.segment200.counts"),
                         (["--manifest", str(tmp_path)], "--manifest"),
                         (["--out", str(out_file)], "--out"),
                         (["--label-map", str(tmp_path / "none.tsv")], "--label-map")):
        assert submit_cli.main(["eval", *common, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (extra, err)
    assert not (pred.parent / "submission_metrics_val.json").exists()  # refused before scoring
    assert submit_cli.main(["eval", str(tmp_path / "nopred"), *common[1:]]) == 2


def test_eval_counts_an_absurd_id_as_a_miss(release, tmp_path, capsys) -> None:
    raw, splits, texts = release
    pred = tmp_path / "pred"
    pred.mkdir()
    for s, t in texts.items():
        lines = t.splitlines()
        lines[0] = "99999999999999999999"  # was OverflowError
        (pred / f"{s}.txt").write_text("\n".join(lines) + "\n")
    assert submit_cli.main(["eval", str(pred), "--raw", str(raw), "--split", "val", "--splits", str(splits)]) == 0
    assert "warning:" in capsys.readouterr().err
    assert json.loads((tmp_path / "submission_metrics_val.json").read_text())["invalid_predictions"] >= 2


def test_eval_refuses_a_huge_entry_unread(release, tmp_path, capsys) -> None:
    raw, splits, texts = release
    a, b = sorted(texts)
    path = _zip(tmp_path / "bomb.zip", {f"{a}.txt": "1\n" * MILLIONS, f"{b}.txt": texts[b]})
    tracemalloc.start()
    code = submit_cli.main(["eval", str(path), "--raw", str(raw), "--split", "val", "--splits", str(splits)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 1 and peak < 20_000_000, peak  # ground truth is read; the 10 MB entry is not
    assert "not read" in capsys.readouterr().err


# --------------------------------------------------------------------------- pcseg.test / pcseg.analyze arguments


@pytest.mark.parametrize("extra,words", [
    (["--overlap", "nan"], "--overlap"), (["--overlap", "inf"], "--overlap"), (["--overlap", "-0.5"], "--overlap"),
    (["--raw", "RAW_MISSING"], "--raw"), (["--splits", "FILE"], "--splits"), (["--out", "FILE"], "--out"),
    (["--save-ply", "FILE"], "--save-ply"), (["--save-html", "FILE"], "--save-html"),
    (["--submit", "DIR", "--raw", "DIR"], "--submit")])
def test_test_cli_argument_values(extra: list[str], words: str, tmp_path, capsys) -> None:
    (tmp_path / "file.txt").write_text("")
    subs = {"RAW_MISSING": str(tmp_path / "missing"), "FILE": str(tmp_path / "file.txt"), "DIR": str(tmp_path)}
    # the checkpoint does not exist: the argument must be refused first, by name
    assert test_cli.main(["--ckpt", str(tmp_path / "none.pth"), *[subs.get(e, e) for e in extra]]) == 2
    err = capsys.readouterr().err
    assert words in err and "none.pth" not in err, err


def test_analyze_output_folder_that_is_a_file(tmp_path, capsys) -> None:
    (tmp_path / "out").write_text("")
    assert analyze_cli.main(["--ckpt", str(tmp_path / "none.pth"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "none.pth" not in err


def test_a_scene_name_is_never_a_path(tmp_path) -> None:
    """Names handed to the evaluator (or read from lists) are checked before they touch the release."""
    from pcseg.data.scannet_raw import RawDataError
    from pcseg.eval.submission import evaluate_predictions, scene_folder

    for name in ("../../etc", "/abs", ".scene0000_00.old-1", "a/b"):
        with pytest.raises(RawDataError, match="scene name"):
            scene_folder(tmp_path, name, "val")
    with pytest.raises(RawDataError, match="scene name"):
        evaluate_predictions(tmp_path, tmp_path, "val", scenes=["../x"],
                             label_map=Path(__file__).parent / "reference" / "scannetv2-labels.combined.tsv")
