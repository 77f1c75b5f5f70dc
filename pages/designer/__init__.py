"""The visual process designer: Vue Flow canvas, Python-owned model, YAML and BPMN I/O.

Entry point: `pages.designer.view.designer_view` (see its module docstring).
"""
