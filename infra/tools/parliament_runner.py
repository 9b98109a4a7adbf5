"""Runs parliament over policies read from stdin; executed by `.venv-iamlint/bin/python`.

parliament (https://github.com/duo-labs/parliament) still imports `pkg_resources`, which
setuptools 81 removed, so it lives in its own virtualenv (like checkov) with an older
setuptools; this file imports nothing from the repository. Input: a JSON list of
{"label", "document", "resource_policy"}
(a resource policy is checked the same way; its waivers say which findings its Principal
element explains); output: a JSON list of findings.
"""

from __future__ import annotations

import json
import sys

from parliament import analyze_policy_string  # type: ignore[import-not-found]


def main() -> int:
    findings = []
    for item in json.load(sys.stdin):
        policy = analyze_policy_string(json.dumps(item["document"]), ignore_private_auditors=True)
        for finding in policy.findings:
            findings.append(
                {
                    "label": item["label"],
                    "issue": finding.issue,
                    "severity": finding.severity,
                    "detail": str(finding.detail)[:300],
                }
            )
    json.dump(findings, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
