"""Screenshot the sparse retriever's word view for a few everyday queries, as a person sees it in the app.

    PYTHONPATH=. .venv/bin/python scripts/lsr_word_view.py --out assets/lsr-word-view.png

Starts the app (no background training) on a free port, searches each query with `lsr` on the stamps,
opens "details" of the top hit, and stacks the detail panels into one PNG. Needs Debian's chromium and
the test requirements (playwright). What the shot shows is recorded in docs/findings.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUERIES = ("a dog", "a red flower", "a bicycle", "a house")
CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the app did not answer at {url} within {seconds:.0f} s")


def shoot(url: str, queries: list[str], out: Path) -> None:
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from webui.cards import label_of

    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        expect(page.locator("#search-button")).to_be_visible(timeout=TIMEOUT_MS)
        page.locator("#collection input[value='stamps']").check()
        boxes = page.locator("#retrievers label")
        for i in range(boxes.count()):
            boxes.nth(i).locator("input").set_checked(boxes.nth(i).text_content().strip() == label_of("lsr"))
        for n, query in enumerate(queries):
            page.locator("#query-text textarea").fill(query)
            page.locator("#search-button").click()
            expect(page.locator("#search-status")).to_contain_text(f"for “{query}”", timeout=TIMEOUT_MS)
            page.locator("#details-0-0").click()
            panel = page.locator("#doc-detail").first
            expect(page.locator("#doc-detail-text")).to_contain_text("shared words", timeout=TIMEOUT_MS)
            path = out.with_name(f"{out.stem}-{n}.png")
            panel.screenshot(path=str(path))
            shots.append(path)
            page.locator("#doc-detail-close").click()
        browser.close()
    images = [Image.open(p).convert("RGB") for p in shots]
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    sheet.save(out)
    for path in shots:
        path.unlink()
    print(f"wrote {out} ({len(queries)} queries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "lsr-word-view.png")
    parser.add_argument("--query", action="append", help="a query to show (repeat); default: a few everyday ones")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "MMR_TRAIN_IN_BACKGROUND": "0", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, 300)
        shoot(url, args.query or list(QUERIES), args.out)
    finally:
        app.terminate()
        app.wait(30)


if __name__ == "__main__":
    main()
