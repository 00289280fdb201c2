"""Task families added as plug-ins, one module each.

A module here holds everything its family needs beyond the shared stages: its own stages
(registered with ``stages.registry.register``), a ``Pipeline`` subclass registered with
``pipeline.core.register_task`` and, when it can be served, an exporter registered with
``pipeline.export.base.register_exporter``. One import line in ``pipeline/__init__.py`` turns it on.
``regression`` is the worked example that docs/tasks.md walks through.
"""
