"""checkov's Bicep policy scan of one deployment shape (bicep_shape.py): each file the shape
deploys, as the shape evaluates it, with the checks IDS expected to fail and nothing else.

  shape_scan.py INFRA_DIR --config CHECKOV_YAML [--expect-fail IDS] PARAMETERS.json...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import checkov.bicep.parser
from checkov.main import Checkov

from bicep_shape import Shape, shape_or_exit


def scan(shape: Shape, config: str, expected: set[str]) -> int:
    """Runs checkov's Bicep framework with its parser answering the shape's definitions."""
    shaped = {path.resolve(): template for path, template in shape.checkov_definitions().items()}
    original = checkov.bicep.parser.Parser.parse

    def parse(self: Any, file_path: Path) -> Any:
        template, lines = original(self, file_path)
        return (shaped.get(Path(file_path).resolve(), template), lines)

    checkov.bicep.parser.Parser.parse = parse
    argv = ["--config-file", config, "--framework", "bicep", "--compact", "--quiet", "-o", "cli"]
    for path in sorted(shaped):
        argv += ["-f", str(path)]
    run = Checkov(argv=argv)
    run.run()
    failed = [record for report in run.scan_reports for record in report.failed_checks]
    passed = sum(len(report.passed_checks) for report in run.scan_reports)
    errors = sum(len(report.parsing_errors) for report in run.scan_reports)
    ids = {record.check_id for record in failed}
    passing = {record.check_id for report in run.scan_reports for record in report.passed_checks}
    print(f"checkov: {passed} passed ({', '.join(sorted(passing))}),")
    print(f"         {len(failed)} failed ({', '.join(sorted(ids)) or 'none'}), {errors} parsing errors")
    problems = []
    if errors or not passed:
        problems.append("checkov could not parse the templates or ran no check")
    if ids - expected:
        problems.append(f"unexpected failed checks: {', '.join(sorted(ids - expected))}")
    if expected - ids:
        problems.append(f"checks expected to fail in this shape passed: {', '.join(sorted(expected - ids))}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("infra", type=Path)
    parser.add_argument("--config", required=True)
    parser.add_argument("--expect-fail", default="")
    parser.add_argument("parameters", nargs="+")
    args = parser.parse_args()
    shape = shape_or_exit(args.infra, args.parameters, "shape_scan")
    return scan(shape, args.config, {check for check in args.expect_fail.split(",") if check})


if __name__ == "__main__":
    sys.exit(main())
