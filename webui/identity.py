"""Who is grading: one identity per page, shared by every tab, checked on the server at every write.

Signed in ("huggingface", on a Space with `hf_oauth: true`): Gradio hands each handler the signed-in
profile (a ``gr.OAuthProfile | None`` parameter); the rater is "hf:<user name>". A visitor who is not
signed in can search and look, not grade.

Local: the page keeps {"name", "token"} in the browser (localStorage). On first visit the server gives
it a random token and an anonymous name of its own; typing a name claims it for that token, once, so
nobody else writes under it. Handlers read the identity from server-side state and check the token
against the store on every write: what a client sends cannot name another rater.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from mmr.limits import LimitError
from mmr.store import RaterStore
from mmr.store.raters import new_token

HUGGINGFACE = "huggingface"
NOT_SIGNED_IN = "Sign in with Hugging Face (button at the top) to grade; without signing in you can search and look."
NO_IDENTITY = "This page has no rater identity yet: reload it (your grades are kept under the name it gives you)."


class IdentityError(ValueError):
    """No verified rater for this request; the message says how to get one."""


@dataclass
class Identity:
    raters: RaterStore
    sign_in: str  # "huggingface" or "local"

    @property
    def signs_in(self) -> bool:
        return self.sign_in == HUGGINGFACE

    def rater(self, who: dict | None, profile: gr.OAuthProfile | None) -> str | None:
        """The verified rater of a request, or None."""
        if self.signs_in:
            return self.raters.account(profile.username) if profile is not None else None
        who = who if isinstance(who, dict) else {}
        return who["name"] if self.raters.holds(who.get("name"), who.get("token")) else None

    def require(self, who: dict | None, profile: gr.OAuthProfile | None) -> str:
        rater = self.rater(who, profile)
        if rater is None:
            raise IdentityError(NOT_SIGNED_IN if self.signs_in else NO_IDENTITY)
        return rater

    def api_rater(self, rater: str, token: str, profile: gr.OAuthProfile | None) -> str:
        """The rater of an API call: the signed-in account, or locally a name with the token it was claimed with."""
        if self.signs_in:
            return self.require(None, profile)
        if not self.raters.holds(rater, token):
            raise IdentityError(
                "rater and token do not match: claim a name with /claim_rater and send the token it returns"
            )
        return rater

    # --------------------------------------------------------------------------- local names

    def restore(self, saved: dict | None) -> dict:
        """The identity a browser comes back with, or a fresh anonymous one (with a fresh token)."""
        saved = saved if isinstance(saved, dict) else {}
        if self.raters.holds(saved.get("name"), saved.get("token")):
            return {"name": saved["name"], "token": saved["token"]}
        token = new_token()
        return {"name": self.raters.claim_anonymous(token), "token": token}

    def claim(self, who: dict, name: str) -> dict:
        """``who`` under a new name, claimed for its token; raises LimitError if the name is taken or malformed."""
        return {"name": self.raters.claim(name, who["token"]), "token": who["token"]}


def as_rater(identity: Identity, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A Gradio handler of inputs (who, *rest) that calls ``fn(rater or None, *rest)``.

    The profile comes first in the signature because Gradio inserts it at its parameter's position.
    """

    def handler(profile: gr.OAuthProfile | None, who: dict | None, *rest):
        return fn(identity.rater(who, profile), *rest)

    return handler


def _status(rater: str | None, signs_in: bool) -> str:
    if rater:
        return f"Your grades are saved as **{rater}**."
    return NOT_SIGNED_IN if signs_in else NO_IDENTITY


@dataclass
class IdentityBar:
    who: gr.State  # {"name", "token"} locally; unused when raters sign in
    changed: list  # events after which the page's rater may be new: tabs chain their refreshes on these


def build_identity_bar(demo: gr.Blocks, identity: Identity) -> IdentityBar:
    who = gr.State({})
    private = dict(api_visibility="private")
    if identity.signs_in:
        with gr.Row():
            gr.LoginButton(elem_id="login", scale=0, min_width=220)
            status = gr.Markdown(elem_id="rater-status")

        def signed_in(profile: gr.OAuthProfile | None):
            return _status(identity.rater(None, profile), True)

        return IdentityBar(who, [demo.load(signed_in, None, status, **private)])

    saved = gr.BrowserState({}, storage_key="mmr-rater")
    with gr.Row(equal_height=True):
        name = gr.Textbox(
            label="Your rater name (Enter to use it; the page gave you an anonymous one)", elem_id="rater", scale=2
        )
        use = gr.Button("Use this name", elem_id="rater-use", scale=0, min_width=160)
        status = gr.Markdown(elem_id="rater-status")

    def restore(previous):
        current = identity.restore(previous)
        return current, current, current["name"], _status(current["name"], False)

    def rename(current, typed):
        if not current.get("token"):
            return current, gr.skip(), gr.skip(), f"⚠️ {NO_IDENTITY}"
        try:
            current = identity.claim(current, typed)
        except LimitError as err:
            return current, gr.skip(), current["name"], f"⚠️ Still **{current['name']}**: {err}."
        return current, current, current["name"], _status(current["name"], False)

    outputs = [who, saved, name, status]
    changed = [demo.load(restore, saved, outputs, **private)]
    for event in (name.submit, use.click):
        changed.append(event(rename, [who, name], outputs, **private))
    return IdentityBar(who, changed)
