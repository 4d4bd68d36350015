"""Runs the real app.py with Hugging Face's side of the sign-in replaced by a stub.

On a Space, Gradio's /login/callback route asks Hugging Face who signed in and writes the answer into
the signed session cookie (``request.session["oauth_info"]``); every handler with a ``gr.OAuthProfile``
parameter is then handed the profile built from it. Offline there is no Hugging Face, so this stub
writes that same session entry for the user named in the URL (/login/huggingface?user=NAME). Everything
after it, the cookie, the profile Gradio builds and hands over, and the app, is the real code path.
Used only by tests; the app itself never imports it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gradio.oauth
from fastapi import Request
from fastapi.responses import RedirectResponse


def _stub_routes(app) -> None:
    @app.get("/login/huggingface")
    async def login(request: Request):
        user = request.query_params.get("user", "")
        request.session["oauth_info"] = {
            "access_token": "stub",
            "token_type": "bearer",
            "scope": "openid profile",
            "expires_at": int(time.time()) + 3600,
            "userinfo": {
                "name": user,
                "preferred_username": user,
                "profile": f"https://example.invalid/{user}",
                "picture": "",
            },
        }
        return RedirectResponse("/")

    @app.get("/logout")
    async def logout(request: Request):
        request.session.pop("oauth_info", None)
        return RedirectResponse("/")


if __name__ == "__main__":
    gradio.oauth._add_mocked_oauth_routes = _stub_routes  # the boundary: what Hugging Face would answer
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import app

    app.main()
