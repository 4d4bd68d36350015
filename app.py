"""Gradio entry point (what Hugging Face Spaces runs). Importing it loads nothing heavy.

python app.py                 # serve on 127.0.0.1:7860 (GRADIO_SERVER_NAME/PORT override)
build_demo(load_resources())  # the Blocks, for tests and embedding
"""

from __future__ import annotations

import os

CSS = """
.result-card { padding: 4px; margin-bottom: 6px; }
.result-column { border-left: 1px solid var(--border-color-primary); padding-left: 6px; }
.grade .wrap { gap: 2px !important; }
.grade label { padding: 2px 6px !important; font-size: 12px !important; }
"""


def theme():
    """Gradio's default theme, but with the bold face of its bundled Source Sans Pro instead of the semibold one.

    The semibold file that Gradio ships holds only some 55 glyphs (A and B, not C, D, q, i). So every semibold
    heading mixed two fonts: "BM25" showed a small B, "Agreement" a small A. The regular and bold files are
    complete, and the browser renders weight 600 with the bold one.
    """
    import gradio as gr

    font = gr.themes.LocalFont("Source Sans Pro", weights=(400, 700))
    return gr.themes.Default(font=(font, "ui-sans-serif", "system-ui", "sans-serif"))


def build_demo(resources):
    """The whole app as a ``gr.Blocks``, wired to already loaded ``resources`` (webui.context)."""
    import gradio as gr

    from mmr.judging import JudgingService
    from mmr.retrievers import RETRIEVERS
    from webui.analysis_tab import build_analysis_tab
    from webui.api import register_api
    from webui.identity import as_rater, build_identity_bar
    from webui.judge_tab import build_judge_tab
    from webui.judging_api import register_judging_api
    from webui.search_tab import build_search_tab

    judging = JudgingService(resources.service, resources.store.judgments, resources.settings.uploads_dir)
    identity = resources.identity

    with gr.Blocks(title="mmr: compare multimodal retrievers") as demo:
        gr.Markdown(
            "# mmr · compare multimodal retrievers\nType a query or drop an image, pick retrievers, "
            "grade what they return (0 = not relevant … 3 = perfect). Every grade is saved at once."
        )
        identity_bar = build_identity_bar(demo, identity)
        # Trained methods without a model are the training panel's to report (Search tab); this is the rest.
        broken = {key: why for key, why in resources.service.load_errors.items() if not RETRIEVERS[key[0]].trained}
        if broken:
            missing = sorted({name for name, _ in broken})
            with gr.Accordion(f"Not loaded: {', '.join(missing)} (open for why and the command to fix it)", open=False):
                gr.Markdown(
                    "\n".join(f"- **{name}** on `{coll}`: {why}" for (name, coll), why in sorted(broken.items()))
                )
        with gr.Tab("Search"):
            build_search_tab(demo, resources, identity_bar.who)
        with gr.Tab("Judge (blind)", elem_id="tab-judge") as judge_tab:
            judge_session = build_judge_tab(demo, resources, judging, identity_bar)
        with gr.Tab("Analysis", elem_id="tab-analysis") as analysis_tab:
            analysis_session = build_analysis_tab(judging, identity, identity_bar)
        # Sessions made or joined in one tab show up in the other's list when it is opened: the rater's own only.
        my_sessions = as_rater(identity, lambda rater: gr.Dropdown(choices=judging.session_names(rater)))
        for tab, dropdown in ((judge_tab, judge_session), (analysis_tab, analysis_session)):
            tab.select(my_sessions, identity_bar.who, dropdown, api_visibility="private")
        register_api(resources)
        register_judging_api(resources, judging)
    return demo


def main() -> None:
    import logging

    from mmr.config import Settings, offline_hub_unless_told

    offline_hub_unless_told()  # before gradio and the models' imports reach the hub's client

    import gradio as gr  # noqa: F401  (fail early with a clear ImportError if the UI extra is missing)

    from mmr.training.background import ReleaseWatcher, start_background_training
    from webui.analysis_tab import ANALYSIS_CSS
    from webui.context import load_resources
    from webui.judge_tab import JUDGE_CSS
    from webui.training_panel import TRAINING_CSS

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mmr").setLevel(logging.INFO)
    settings = Settings()
    print(settings.storage_line(), flush=True)
    if os.environ.get("MMR_BUILD_ON_START") == "1" or os.environ.get("SPACE_ID"):
        from mmr.build import build_corpora, build_indexes
        from mmr.retrievers import Resources

        build_indexes(settings, Resources(settings), summary=build_corpora(settings))
    if settings.train_in_background:
        start_background_training(settings)
    resources = load_resources(settings)
    ReleaseWatcher(resources.service, settings.reload_seconds).start()
    demo = build_demo(resources)
    demo.queue(default_concurrency_limit=8).launch(
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size="10mb",
        # Only the collections' images are served from disk. Uploaded query images are shown from Gradio's cache
        # (under names it draws), and models, qrels, the database and the uploads folder are never served.
        allowed_paths=[str(settings.media_dir)],
        css=CSS + JUDGE_CSS + ANALYSIS_CSS + TRAINING_CSS,
        theme=theme(),
    )


if __name__ == "__main__":
    main()
