"""The help texts of the ``glmverify`` command line (``cli`` builds the parser around them)."""
from __future__ import annotations

DESCRIPTION = """\
Verify GLM-5.2 deployments (vLLM, SGLang, vllm-ascend) against the matrix in matrix.yaml.

A run writes results/<UTC time>/matrix.json (one cell per row and feature: verified, failed,
inconclusive, inferred, unsupported or not_run) plus matrix.md, matrix.html and junit.xml;
results/latest points at the newest run.

typical release flow:
  glmverify rules vllm-glm52-fp8-h200          the statistical decisions a row makes, with error rates
  glmverify plan -m h200                      what would be launched (docker run commands)
  glmverify run -m h200 --results out/h200    run the suites on this machine's rows
  glmverify merge out/h200 out/cpu --out out/release
  glmverify signoff --by "Jane Doe" out/release
  glmverify signoff --verify out/release      in CI: fails if matrix.json changed since
"""

RUN_EPILOG = """\
Any other option is passed to pytest unchanged, for example --concurrency 8,
--accuracy-samples 0, --startup-timeout 1800, -x, -v, --lf. See `pytest --help` (section
"GLM-5.2 verification matrix") for the harness options. Put pytest options that look like
glmverify's after `--`.

examples:
  glmverify run -m cpu                                  the reference rows, launched locally
  glmverify run -m h200 -n 4 --results out/h200         rows on H200, 4 workers (one row per worker)
  glmverify run --endpoint http://gpu-box:8000 --row vllm-glm52-fp8-h200 -k tool
  glmverify run --dry-run -m cpu                        print the pytest command only

exit status: pytest's (0 all passed, 1 some check failed, 2 usage error, 5 nothing collected).
"""

PLAN_EPILOG = """\
Nothing is launched: for every selected row the harness prints the exact launch command
(docker run ... for container rows) with secrets shown as variable names.

Rows are selected by their hardware marker (-m "h200 or b200", "not cpu"); pytest is not run.
Options glmverify does not know are handed to `pytest --plan` (e.g. --endpoint URL).

examples:
  glmverify plan -m h200
  glmverify plan -m "mi300x or mi355x" --matrix my-matrix.yaml
"""

MERGE_EPILOG = """\
Each RESULTS is a matrix.json or a results directory holding one. Rules:
  * a live result (verified/failed) beats a declared one (inferred/unsupported/not_run);
  * files of the same run (workers, shards) are combined check by check;
  * across runs the newest live result wins; older ones stay in the cell's "history";
  * a failed result is never hidden by an equally old or older verified one;
  * declared cells keep their basis; cells of matrix.yaml no input has are filled from it;
  * rows and features unknown to matrix.yaml are kept and listed as warnings.
DIR receives matrix.json, matrix.md, matrix.html and junit.xml.

example:
  glmverify merge results/20250101T0900Z runner-h200/matrix.json runner-mi300x --out release/
"""

REPORT_EPILOG = """\
Re-renders matrix.md (pull requests, sign-off record), matrix.html (one self-contained page:
grouped rows, coloured cells, drill-down to checks and evidence, figures) and junit.xml (one
testcase per check) from DIR/matrix.json. matrix.json itself is never modified.

example:
  glmverify report results/latest && xdg-open results/latest/matrix.html
"""

SIGNOFF_EPILOG = """\
--by NAME writes DIR/signoff.json: the signer, the UTC time, the sha256 and size of
DIR/matrix.json and its cell counts per status, and refreshes matrix.md/matrix.html with the
sign-off. --verify recomputes the sha256 and exits 1 if matrix.json changed after signing (or
was never signed), 0 when it is the signed one.

examples:
  glmverify signoff --by "Jane Doe <jane@example.com>" --note "release 2025.1" release/
  glmverify signoff --verify release/
"""
