"""Talking to a running Gradio app the way an attacker can: raw HTTP, no gradio_client, no browser.

Two doors: the public API (``POST /gradio_api/call/<api_name>`` with a JSON body we write ourselves, so
NaN and other values a client library would not send get through), and the queue that every event of the
page goes through (``/gradio_api/queue/join`` with an event's ``fn_index``), which answers events marked
``api_visibility="private"`` just the same: private only hides an event from the API page.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_S = 120


def _post(url: str, body: bytes, content_type: str = "application/json") -> dict:
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        return json.loads(answer.read())


def _events(url: str):
    """The server-sent events of ``url``, as (event name, parsed data) pairs."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as stream:
        event = None
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                yield event, (json.loads(payload) if payload and payload != "null" else None)


def call_api(base_url: str, api_name: str, body: str) -> list | str:
    """A public endpoint called with a JSON body as written (``{"data": [...]}``): its outputs, or the
    text of the error event."""
    base = base_url.rstrip("/")
    event_id = _post(f"{base}/gradio_api/call/{api_name}", body.encode())["event_id"]
    for event, data in _events(f"{base}/gradio_api/call/{api_name}/{event_id}"):
        if event == "complete":
            return data
        if event == "error":
            return f"error event: {data}"
    raise AssertionError(f"{api_name}: the stream ended without an answer")


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


@dataclass
class QueueAnswer:
    success: bool
    data: list = field(default_factory=list)
    error: str = ""

    def text(self) -> str:
        """Every string in the outputs, for asserting on messages."""
        return " ".join(str(v) for v in self.data) + self.error


class PageSession:
    """One browser tab's worth of server-side state (a ``session_hash``), driven event by event.

    Events are found by the ``elem_id`` of the component that triggers them; inputs are given by the
    ``elem_id`` of the input component (or by position for those without one) and the rest are None.
    """

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.session_hash = uuid.uuid4().hex[:11]
        with urllib.request.urlopen(f"{self.base}/config", timeout=TIMEOUT_S) as answer:
            self.config = json.loads(answer.read())
        self.components = {c["id"]: c for c in self.config["components"]}
        self.ids = {c.get("props", {}).get("elem_id"): c["id"] for c in self.config["components"]}

    def dependency(self, elem_id: str, event: str) -> dict:
        target = self.ids[elem_id]
        found = [d for d in self.config["dependencies"] if [target, event] in d["targets"]]
        assert found, f"no {event} event on #{elem_id}"
        return found[0]

    def dependency_named(self, api_name: str) -> dict:
        return next(d for d in self.config["dependencies"] if d["api_name"] == api_name)

    def input_ids(self, dependency: dict) -> list[str | None]:
        return [self.components[i].get("props", {}).get("elem_id") for i in dependency["inputs"]]

    def run(self, dependency: dict, values: dict | list | None = None) -> QueueAnswer:
        if isinstance(values, list):
            data = values
        else:
            values = values or {}
            data = [values.get(elem_id) for elem_id in self.input_ids(dependency)]
        body = {
            "data": data,
            "fn_index": dependency["id"],
            "session_hash": self.session_hash,
            "event_data": None,
            "trigger_id": dependency["targets"][0][0] if dependency["targets"] else None,
        }
        _post(f"{self.base}/gradio_api/queue/join", json.dumps(body).encode())
        for _, message in _events(f"{self.base}/gradio_api/queue/data?session_hash={self.session_hash}"):
            if message and message.get("msg") == "process_completed":
                output = message.get("output") or {}
                if message.get("success"):
                    return QueueAnswer(True, output.get("data", []))
                return QueueAnswer(False, [], str(output.get("error")))
        raise AssertionError("the queue stream ended without an answer")

    def trigger(self, elem_id: str, event: str, values: dict | list | None = None) -> QueueAnswer:
        return self.run(self.dependency(elem_id, event), values)

    def become(self, rater: str, token: str) -> QueueAnswer:
        """What a page does on load with {name, token} in its browser storage, then its session list."""
        restored = self.run(self.dependency_named("restore"), [{"name": rater, "token": token}])
        self.run(self.dependency_named("my_sessions"), [None])
        return restored

    def open_analysis_tab(self) -> QueueAnswer:
        return self.trigger("tab-analysis", "select", [None])

    def upload(self, path) -> dict:
        """A file sent to Gradio's upload route, as the FileData an event input takes."""
        boundary = uuid.uuid4().hex
        content = Path(path).read_bytes()
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"{self.base}/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            server_path = json.loads(answer.read())[0]
        return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
