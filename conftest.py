"""The design card's front door: ``pytest -m h200`` (or ``-m cpu``, ``--plan``) from the repository
root verifies the matrix rows of that hardware.

pyproject's ``testpaths`` is ``suites``, so a bare ``pytest -m MARKER`` collects the conformance
suites; the project's own tests run by path (``pytest tests``, ``make test``). The suites' plugin
(``glmverify.plugin``: options such as ``--plan``, rows, engines, results) is loaded by pyproject's
``addopts = "-p glmverify.plugin"``, before the command line is parsed, so ``--results DIR`` with
a space is an option and not a path; it is named here too (pytest reads ``pytest_plugins`` only
from the top-level conftest) for a run whose ``addopts`` are overridden. Registered twice by the
same name, it loads once. It stays inert in runs that collect no matrix row (the project's own
tests): no engine starts and no results are written.
"""
pytest_plugins = ["glmverify.plugin"]
