"""glmverify: conformance suites and the verification matrix for GLM-5.2 deployments.

The package is layered, bottom first (``tests/unit/test_layering.py`` holds every import to it):

1. ``paths``, ``util``, ``redact``, ``options``: standard library only;
2. data models: ``matrix`` (matrix.yaml in layers, resolved to rows), ``document`` (matrix.json
   and the one status rule), ``verdicts``, ``gsm8k``, ``haystack``, ``hardware``, ``standin``
   (the GLM-5.2 stand-in model the reference engines serve), ``parsers``;
3. talking to an engine: ``client``, ``chat`` (normalised responses), ``checks``, ``engines``
   (process and attached launchers);
4. engine differences and decisions: ``adapters`` (one object per engine), ``flags``, ``policy``,
   ``observed``;
5. runs and their records: ``container_spec``/``containers``, ``session``, ``results``,
   ``merge``, ``signoff``;
6. ``report``, ``plan``, ``eligibility``;
7. entry points: ``plugin`` (pytest wiring), ``cli``, ``faultproxy``, ``faults``.
"""
__version__ = "0.1.0"
