"""The classroom dashboard: ``python -m visiondl_keras dashboard`` (a local Gradio web app).

Modules: :mod:`.resources` (models and test data, loaded lazily), :mod:`.analysis` (the computations
behind each tab, free of any UI code), :mod:`.views` (HTML tables and images), :mod:`.app` (the
Gradio page and the server). Gradio is an optional dependency: ``pip install -e .[dashboard]``.
"""
