"""Time `make demo` as a newcomer meets it: from the command to the first search, then to each method.

Run from a fresh clone (the README's "What appears when" quotes its output):

    python3 scripts/demo_timeline.py [--port 7860] [--screenshot assets/training-panel.png]

It starts `make demo`, asks the app's `/search_json` for a text query until it answers, then every few
seconds for each trained method until all of them return hits, and prints when each first did. With
--screenshot it also saves the Search tab's picker and training panel, once a method is training, with
Debian's Chromium (playwright). It stops the demo when done.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmr.retrievers import TRAINING_ORDER  # noqa: E402

BASELINES = ["bm25", "zeroshot-verbal"]
CHROMIUM = "/usr/bin/chromium"


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


def served(client, names: list[str]) -> set[str]:
    found = set()
    for start in range(0, len(names), 6):  # the app searches at most 6 retrievers at once
        answer = client.predict("a red flower", "stamps", names[start : start + 6], 3, api_name="/search_json")
        found |= {r["retriever"] for r in answer.get("results", []) if r["hits"]}
    return found


def screenshot(url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#training-status .training-bar").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1400, "height": 620})
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(args.port), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (REPO / "demo-timeline.log").open("w")
    start = time.monotonic()
    demo = subprocess.Popen(
        ["make", "demo"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    rows = []
    try:
        while not answers(url):
            if demo.poll() is not None:
                raise SystemExit(f"make demo exited ({demo.returncode}); see demo-timeline.log")
            time.sleep(1)
        rows.append(("app answers", time.monotonic() - start))
        from gradio_client import Client

        client = Client(url, verbose=False)
        assert served(client, BASELINES) == set(BASELINES), "the baselines did not answer"
        rows.append(("first search (BM25 + zero-shot)", time.monotonic() - start))
        shot_taken = args.screenshot is None
        arrived: set[str] = set()
        while arrived != set(TRAINING_ORDER) and time.monotonic() - start < args.timeout:
            for name in sorted(served(client, [n for n in TRAINING_ORDER if n not in arrived])):
                arrived.add(name)
                rows.append((f"{name} served", time.monotonic() - start))
                print(f"{rows[-1][1]:7.0f} s  {name}", flush=True)
            if not shot_taken and len(arrived) >= 2:
                screenshot(url, args.screenshot)
                shot_taken = True
            time.sleep(5)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait()
    print("\n| moment | seconds after `make demo` |\n|---|---|")
    for moment, seconds in rows:
        print(f"| {moment} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
