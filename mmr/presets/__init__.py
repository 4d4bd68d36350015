"""Published checkpoints served as retrievers: each preset is data (presets/registry.py), read by a reader that
turns the published files into a ``PresetModel`` (presets/base.py); retrievers/preset.py indexes and searches
with it like any other retriever."""
