"""Time `make demo` as a newcomer meets it: from the command to the first search, then to each method.

Run from a fresh clone (the README's "What appears when" quotes its output):

    python3 scripts/demo_timeline.py [--port 7860]

It starts `make demo`, asks the app's `/search_json` for a text query until it answers, then every few
seconds for each trained method until all of them return hits, and prints when each first did. It needs
nothing but Python's standard library (a fresh clone has no .venv until `make demo` makes one). It stops
the demo when done.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINES = ["bm25", "zeroshot-verbal"]


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


def search_json(url: str, *data) -> dict:
    """One call of the app's /search_json endpoint over Gradio's HTTP API (post, then read the event)."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/search_json",
        data=json.dumps({"data": list(data)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    event = json.load(urllib.request.urlopen(request, timeout=60))["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/search_json/{event}", timeout=120).read().decode()
    for block in stream.split("\n\n"):
        if block.startswith("event: complete"):
            return json.loads(block.split("data: ", 1)[1])[0]
    raise RuntimeError(f"no answer from /search_json: {stream[-500:]}")


def served(url: str, names: list[str]) -> set[str]:
    found = set()
    for start in range(0, len(names), 6):  # the app searches at most 6 retrievers at once
        answer = search_json(url, "a red flower", "stamps", names[start : start + 6], 3)
        found |= {r["retriever"] for r in answer.get("results", []) if r["hits"]}
    return found


def training_order() -> list[str]:
    """From the registry, through the .venv that `make demo` made (this script runs before it exists)."""
    code = "from mmr.retrievers import TRAINING_ORDER; print(' '.join(TRAINING_ORDER))"
    return subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7860)
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
        assert served(url, BASELINES) == set(BASELINES), "the baselines did not answer"
        rows.append(("first search (BM25 + zero-shot)", time.monotonic() - start))
        print(f"{rows[-1][1]:7.0f} s  first search", flush=True)
        order = training_order()
        arrived: set[str] = set()
        while arrived != set(order) and time.monotonic() - start < args.timeout:
            for name in sorted(served(url, [n for n in order if n not in arrived])):
                arrived.add(name)
                rows.append((f"{name} served", time.monotonic() - start))
                print(f"{rows[-1][1]:7.0f} s  {name}", flush=True)
            time.sleep(5)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait()
    print("\n| moment | seconds after `make demo` |\n|---|---|")
    for moment, seconds in rows:
        print(f"| {moment} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
