"""The scene viewer in a real browser: headless Chromium renders a ScanNet-size scene page in
its three modes. Prints JSON; exits 1 if a check fails.

Checks: the page finishes drawing (``data-ready`` set, no error shown); each screenshot has the
scene in it (not blank); the three modes give different images; hiding a class (``#hide=``)
changes the image; Chromium's own network log of
the visit holds no request made by the page (and does hold those of a page that fetches). Also reports the file size and the wall time
of a browser visit against an empty page's.

``python tests/browser/check_viewer.py [--out DIR] [--chromium PATH]`` (``make test-browser``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODES = ("pred", "gt", "error")
SIZE = (1000, 650)
PANEL_WIDTH = 270  # the left control panel; the scene is drawn right of it
BACKGROUND = np.array([29, 32, 38]) / 255  # the page's clear colour (viewer.css / viewer.js)


def make_page(work: Path) -> tuple[Path, dict]:
    """A synthetic ScanNet-size scene through the real pipeline: release -> caches -> pcseg.view,
    with a submission-format prediction (the truth with some classes confused, as a model does)."""
    from pcseg import view as view_cli
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import SceneCacheDataset
    from pcseg.data.prep import main as prep
    from pcseg.data.synthetic import write_release
    from pcseg.eval.submission import format_ids

    raw, caches = work / "raw", work / "caches"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        write_release(raw, num_scenes=2, seed=11, size="scannet")
        assert prep(["--raw", str(raw), "--out", str(caches), "--no-progress"]) == 0
    split = next(p.name for p in sorted(caches.iterdir()) if p.is_dir() and any(p.iterdir()))
    ds = SceneCacheDataset(caches, split)
    data = ds.load_scene(0)
    gt = data["segment"]
    classes, counts = np.unique(gt[gt >= 0], return_counts=True)
    big = classes[np.argsort(-counts)]
    pred = np.where(gt >= 0, gt, big[0])
    pred[gt == big[1]] = big[0]  # a large class confused with another
    pred[np.arange(gt.size) % 9 == 0] = big[2]  # scattered noise
    table = class_table("segment200")
    sub = work / "pred.txt"
    sub.write_text(format_ids(table.ids[pred]))
    page = work / f"{ds.names[0]}.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert view_cli.main([str(caches / split / ds.names[0]), "--pred", str(sub), "--out", str(page)]) == 0
    return page, {"scene": ds.names[0], "points": int(gt.size), "file_mb": round(page.stat().st_size / 1e6, 3)}


def chromium(exe: str, url: str, profile: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [exe, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--hide-scrollbars", f"--window-size={SIZE[0]},{SIZE[1]}", "--virtual-time-budget=20000",
           "--disable-background-networking", "--disable-component-update", "--no-first-run",
           "--disable-sync", "--metrics-recording-only", f"--user-data-dir={profile}", *extra, url]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return done, time.perf_counter() - t0


def page_requests(exe: str, url: str, work: Path) -> list[str]:
    """URLs the page itself requested during a visit, from Chromium's network log."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "netlog.json"
    chromium(exe, url, work / "profile", f"--log-net-log={log}", "--net-log-capture-mode=Everything",
             f"--screenshot={work / 'shot.png'}")
    data = json.loads(log.read_text())
    start = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in data["events"] if e["type"] == start]
    return [p.get("url", "?") for p in jobs if "initiator" in p and p["initiator"] != "not an origin"]


def interact(exe: str, url: str, work: Path, meta: dict) -> tuple[dict, dict]:
    """Use the page as a person does, through the DevTools protocol: open it (timed, real clock),
    click a point, click and double-click legend entries, press a mode key, zoom with the wheel.
    A step that fails or times out is a failed check (its error is reported), not a crash."""
    import io as _io

    import matplotlib.image as mpimg

    from cdp import Browser

    checks: dict[str, bool] = {}
    info: dict = {"errors": {}}
    names = {c["name"]: c for c in meta["classes"]}
    palette = {tuple(c["color"]): name for name, c in names.items()}
    rows = "document.querySelectorAll('#legend .cls')"
    browser = Browser(exe, f"{url}#mode=pred", work / "profile_cdp", SIZE)

    def shot() -> np.ndarray:
        return np.asarray(mpimg.imread(_io.BytesIO(browser.screenshot()), format="png"))[..., :3]

    def row_centre(i: int) -> tuple[float, float]:
        x, y = browser.eval(f"(() => {{ const r = {rows}[{i}].getBoundingClientRect(); "
                            "return [r.x + 20, r.y + r.height / 2]; })()")
        return float(x), float(y)

    def opens() -> bool:
        t0 = time.perf_counter()
        browser.wait_for("document.body && document.body.dataset.ready === '1'")
        info["open_seconds"] = round(time.perf_counter() - t0, 3)
        info["open_status"] = browser.eval("document.getElementById('status').textContent")
        return info["open_seconds"] <= 2.0

    def click_point() -> bool:
        # A point whose pixel (and its neighbours) has a class colour: the box must name that class.
        rgb = (shot() * 255).round().astype(np.int64)
        hits = [(y, x) for y in range(1, rgb.shape[0] - 1, 7) for x in range(PANEL_WIDTH + 20, rgb.shape[1] - 1, 7)
                if tuple(rgb[y, x]) in palette and (rgb[y - 1:y + 2, x - 1:x + 2] == rgb[y, x]).all()]
        # The rarest class on screen: a small object, where picking the wrong point would show.
        by_class: dict[str, list] = {}
        for y, x in hits:
            by_class.setdefault(palette[tuple(rgb[y, x])], []).append((y, x))
        rare = min(by_class.values(), key=len)
        y, x = rare[len(rare) // 2]
        browser.click(float(x), float(y))
        text = browser.wait_for("getComputedStyle(document.getElementById('pick')).display === 'block' && "
                                "document.getElementById('pick').textContent", timeout=5)
        info["clicked_pixel_class"], info["pick_text"] = palette[tuple(rgb[y, x])], text
        said = dict(part.split(": ", 1) for part in text.split(" · "))
        return said.get("predicted") == palette[tuple(rgb[y, x])] and said.get("true") in names

    def legend_hides() -> bool:
        before = shot()
        browser.click(*row_centre(0))
        browser.wait_for(f"{rows}[0].classList.contains('off')", timeout=5)
        summary = browser.eval("document.getElementById('summary').textContent")
        return bool((np.abs(shot() - before).max(-1) > 0.05).mean() > 0.001 and "1 hidden" in summary)

    def legend_isolates() -> bool:
        browser.click(*row_centre(1), count=1)
        browser.click(*row_centre(1), count=2)  # the second press of a double click
        return bool(browser.wait_for(f"(() => {{ const r = Array.from({rows}); return !r[1].classList.contains('off') "
                                     "&& r.every((x, i) => i === 1 || x.classList.contains('off')); })()", timeout=5))

    def key_mode() -> bool:
        browser.key("3")
        return browser.wait_for("document.title.endsWith('error') && location.hash", timeout=5) == "#mode=error"

    def wheel() -> bool:
        before = shot()
        browser.call("Input.dispatchMouseEvent", {"type": "mouseWheel", "x": 600, "y": 300, "deltaX": 0,
                                                  "deltaY": -400})
        time.sleep(0.3)
        return bool((np.abs(shot() - before).max(-1) > 0.05).mean() > 0.01)

    try:
        for name, step in (("opens_within_2_s", opens), ("click_shows_predicted_and_true_class", click_point),
                           ("legend_click_hides_a_class", legend_hides),
                           ("legend_double_click_isolates", legend_isolates),
                           ("key_3_switches_to_errors", key_mode), ("wheel_zooms", wheel)):
            try:
                checks[name] = bool(step())
            except (TimeoutError, RuntimeError, IndexError, ValueError) as exc:
                checks[name] = False
                info["errors"][name] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        browser.close()
    return checks, info


def image(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return np.asarray(mpimg.imread(path))[..., :3]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "browser", help="screenshots and the page")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = ap.parse_args()
    if not args.chromium:
        print(json.dumps({"error": "chromium not found: apt-get install -y chromium (make test-browser does)"}))
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"checks": {}}
    checks = result["checks"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        page, info = make_page(work)
        result.update(info)
        shutil.copy(page, args.out / page.name)
        url = page.resolve().as_uri()
        shots = {}
        for mode in MODES:
            shot = args.out / f"viewer_{mode}.png"
            shot.unlink(missing_ok=True)
            done, _ = chromium(args.chromium, f"{url}#mode={mode}", work / f"profile_{mode}",
                               f"--screenshot={shot}")
            if not shot.is_file():
                print(json.dumps({"error": f"no screenshot for mode {mode}", "stderr": done.stderr[-2000:]}))
                return 1
            shots[mode] = image(shot)
            # The DOM after the scripts ran: drawn, in this mode, no error in the status line.
            dom, _ = chromium(args.chromium, f"{url}#mode={mode}", work / f"profile_dom_{mode}", "--dump-dom")
            ready = 'data-ready="1"' in dom.stdout
            title = re.search(r"<title>([^<]*)</title>", dom.stdout)
            status = re.search(r'<div id="status"[^>]*>([^<]*)</div>', dom.stdout)
            checks[f"{mode}_drawn"] = bool(ready and title and title.group(1).endswith(mode))
            result[f"{mode}_status"] = status.group(1) if status else None
        for mode, img in shots.items():
            scene = img[:, PANEL_WIDTH:]
            differs = np.abs(scene - BACKGROUND).max(-1) > 0.05
            colours = len(np.unique((scene[differs] * 255).round().astype(np.int64) @ [65536, 256, 1]))
            result[f"{mode}_scene_pixels"] = round(float(differs.mean()), 4)
            result[f"{mode}_colours"] = colours
            checks[f"{mode}_not_blank"] = bool(differs.mean() > 0.05 and colours >= 2)
        # Hiding a class through the address (what the legend does on a click) removes its points.
        largest = json.loads(re.search(r'id="meta">([^<]*)</script>', page.read_text()).group(1))["classes"][0]
        hide_shot = args.out / "viewer_gt_hide.png"
        chromium(args.chromium, f"{url}#mode=gt&hide={largest['name']}", work / "profile_hide",
                 f"--screenshot={hide_shot}")
        hidden = image(hide_shot)
        gone = (np.abs(shots["gt"] - hidden).max(-1) > 0.05)[:, PANEL_WIDTH:].mean()
        result["hide_largest_class"], result["changed_by_hiding"] = largest["name"], round(float(gone), 4)
        checks["hiding_a_class_removes_points"] = bool(gone > 0.01)
        for a, b in (("pred", "gt"), ("pred", "error"), ("gt", "error")):
            changed = float((np.abs(shots[a] - shots[b]).max(-1) > 0.05).mean())
            result[f"changed_{a}_vs_{b}"] = round(changed, 4)
            checks[f"{a}_differs_from_{b}"] = changed > 0.01
        # What the page asked the network for: nothing. Chromium's own background requests (its
        # "initiator" is "not an origin") are the browser's, not the page's, and are left out.
        requests = page_requests(args.chromium, f"{url}#mode=gt", work / "net_page")
        result["page_requests"] = requests[:10]
        checks["no_network_requests"] = requests == []
        # The detector itself sees a page that does reach out (so the check above can fail).
        leak = work / "leak.html"
        leak.write_text("<!doctype html><script>fetch('http://127.0.0.1:9/x').catch(() => {});"
                        "new Image().src = 'http://example.invalid/a.png';</script>")
        checks["detector_sees_a_leaking_page"] = len(page_requests(args.chromium, leak.as_uri(), work / "net_leak")) >= 2
        meta = json.loads(re.search(r'id="meta">([^<]*)</script>', page.read_text()).group(1))
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        more, seen = interact(args.chromium, url, work, meta)
        checks.update(more)
        result.update(seen)
        # Wall time of a browser visit (start, load, decode, first frame, screenshot) against an empty page.
        blank = work / "blank.html"
        blank.write_text("<!doctype html><title>blank</title>")
        _, t_blank = chromium(args.chromium, blank.as_uri(), work / "profile_t0", f"--screenshot={work / 'b.png'}")
        _, t_page = chromium(args.chromium, f"{url}#mode=pred", work / "profile_t1", f"--screenshot={work / 'p.png'}")
        result["visit_seconds_empty_page"], result["visit_seconds_scene"] = round(t_blank, 2), round(t_page, 2)
        checks["file_under_3mb"] = info["file_mb"] <= 3.0
    result["ok"] = all(checks.values())
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
