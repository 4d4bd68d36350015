"""mmr: compare multimodal retrievers by eye and by judgment.

The library never imports gradio; ``app.py`` and ``webui/`` wire it to widgets.
"""

__version__ = "0.1.0"
