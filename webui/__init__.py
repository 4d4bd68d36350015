"""The Gradio UI: wires library calls to widgets and nothing more. Only this package imports gradio."""
