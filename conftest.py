"""Root conftest: the glmverify pytest plugin (options, matrix rows, engines, results)."""
pytest_plugins = ["glmverify.plugin"]
