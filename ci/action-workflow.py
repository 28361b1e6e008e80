#!/usr/bin/env python3
"""Writes workflows for actionlint, which lints workflows but not action
metadata: action.yml's steps as one job of a reusable workflow (its inputs
become workflow_call inputs, so `${{ inputs.* }}`, `steps.*` and the
actions' `with:` are checked, and `run:` scripts go through shellcheck),
and the README's example workflow as it is.

    ci/action-workflow.py action  action.yml OUT
    ci/action-workflow.py readme  README.md  OUT
"""
import sys

import yaml


def action(src, out):
    with open(src) as f:
        act = yaml.safe_load(f)
    assert act["runs"]["using"] == "composite", "action.yml must be a composite action"
    inputs = {
        name: {"type": "string", "required": bool(spec.get("required", False)), "default": str(spec.get("default", ""))}
        for name, spec in (act.get("inputs") or {}).items()
    }
    wf = {
        "name": f"{src} as a workflow (for actionlint)",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-24.04", "steps": act["runs"]["steps"]}},
    }
    with open(out, "w") as f:
        yaml.safe_dump(wf, f, sort_keys=False, width=1000)


def readme(src, out):
    text = open(src).read()
    block = text.split("<!-- action-example:begin -->")[1].split("<!-- action-example:end -->")[0]
    body = block.split("```yaml\n")[1].split("```")[0]
    with open(out, "w") as f:
        f.write(body)


if __name__ == "__main__":
    {"action": action, "readme": readme}[sys.argv[1]](sys.argv[2], sys.argv[3])
