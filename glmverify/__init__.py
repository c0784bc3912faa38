"""glmverify: conformance suites and the verification matrix for GLM-5.2 deployments.

Layout: ``matrix`` (what to verify), ``engines``/``containers`` (how an engine is launched and
owned), ``client`` (how it is spoken to), ``chat`` (normalised responses), ``results`` (cells),
``report`` (matrix.md/html), ``plugin``/``session`` (the pytest interface), ``standin`` (the
reference engine's GLM-5.2 stand-in model).
"""
__version__ = "0.1.0"
