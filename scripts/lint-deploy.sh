#!/usr/bin/env bash
# Lints the AWS deployment in deploy/ without an AWS account:
#   1. cfn-lint on deploy/template.yaml (the SAM template itself);
#   2. an offline SAM transform of it (the CloudFormation that `sam deploy` submits);
#   3. cfn-lint on the transformed template;
#   4. a least-privilege check of every IAM statement in the transformed template:
#      no "*" or wildcard in any action, no "Resource": "*", no NotAction/NotResource,
#      no managed policies (their statements cannot be checked here).
#
# Usage: scripts/lint-deploy.sh [VENV_DIR]   (default: .venv at the repository root)
# cfn-lint and aws-sam-translator are installed into VENV_DIR when missing.
# Exits non-zero on any finding, error or warning.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
case "$venv" in
  /*) ;;
  *) venv="$PWD/$venv" ;;
esac
cd "$root"

template="deploy/template.yaml"
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ -f "$template" ] || fail "$template not found"

step "python environment: $venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || fail "could not create a virtual environment in $venv"
fi
if ! "$venv/bin/python" -c 'import cfnlint, samtranslator' > /dev/null 2>&1; then
  echo "installing cfn-lint and aws-sam-translator"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'cfn-lint>=1.58,<2' 'aws-sam-translator>=1.115,<2' \
    || fail "pip could not install cfn-lint and aws-sam-translator into $venv"
fi
"$venv/bin/python" - <<'EOF'
from importlib.metadata import version
print(f"cfn-lint {version('cfn-lint')}, aws-sam-translator {version('aws-sam-translator')}")
EOF

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
transformed="$tmp/template.transformed.json"

step "cfn-lint $template"
"$venv/bin/cfn-lint" "$template" || fail "cfn-lint reported problems in $template (errors or warnings above)"
echo "no errors, no warnings"

step "SAM transform (offline) -> $(basename "$transformed")"
# The transform needs a region for ARNs and S3 locations for code. Local CodeUri
# folders (cargo lambda's output) are replaced by placeholder S3 URIs, as
# `sam deploy` does when it uploads them.
AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
  "$venv/bin/python" - "$template" "$transformed" <<'EOF' || fail "the SAM transform failed (see above)"
import json
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

source, target = sys.argv[1], sys.argv[2]
template, matches = decode(source)
if matches or template is None:
    for match in matches:
        print(match, file=sys.stderr)
    sys.exit(f"could not parse {source}")
# Plain JSON types (the decoder returns annotated subclasses).
template = json.loads(json.dumps(template))


class NoManagedPolicies:
    """The template uses no managed policies, so there is nothing to look up."""

    def load(self):
        return {}


for name, resource in template.get("Resources", {}).items():
    if resource.get("Type") == "AWS::Serverless::Function":
        code = resource.get("Properties", {}).get("CodeUri")
        if isinstance(code, str) and not code.startswith("s3://"):
            resource["Properties"]["CodeUri"] = f"s3://lint-placeholder-bucket/{name}.zip"

try:
    output = transform(template, {"Stage": "dev"}, NoManagedPolicies())
except InvalidDocumentException as error:
    for cause in error.causes:
        print(f"  {cause.message}", file=sys.stderr)
    sys.exit(1)

with open(target, "w", encoding="utf-8") as handle:
    json.dump(output, handle, indent=2, sort_keys=True)
resources = output["Resources"]
print(f"{len(resources)} CloudFormation resources:")
kinds = {}
for resource in resources.values():
    kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
for kind in sorted(kinds):
    print(f"  {kinds[kind]:3d} {kind}")
EOF

step "cfn-lint on the transformed template"
"$venv/bin/cfn-lint" "$transformed" || fail "cfn-lint reported problems in the transformed template (errors or warnings above)"
echo "no errors, no warnings"

step "IAM least privilege (transformed template)"
# No exception for Resource "*" is needed: custom metrics are written as CloudWatch
# Logs Embedded Metric Format lines, so no role has cloudwatch:PutMetricData (which
# only accepts Resource "*").
"$venv/bin/python" - "$transformed" <<'EOF' || fail "IAM least-privilege check failed (see above)"
import json
import sys

resources = json.load(open(sys.argv[1], encoding="utf-8"))["Resources"]
problems = []
checked = 0


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(node, path):
    """Every policy statement below node: a dict with Effect and Action/NotAction."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield path, node
            return
        for key, value in node.items():
            yield from statements(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from statements(value, f"{path}[{index}]")


for name, resource in sorted(resources.items()):
    properties = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role" and properties.get("ManagedPolicyArns"):
        problems.append(f"{name}: managed policies {properties['ManagedPolicyArns']} (use explicit statements)")
    for path, statement in statements(properties, name):
        checked += 1
        sid = statement.get("Sid", path)
        where = f"{name} {sid}"
        for key in ("NotAction", "NotResource"):
            if key in statement:
                problems.append(f"{where}: {key} is not allowed")
        actions = as_list(statement.get("Action", []))
        for action in actions:
            if not isinstance(action, str):
                problems.append(f"{where}: action {action!r} is not a literal name")
            elif action == "*" or action.endswith(":*") or "*" in action:
                problems.append(f"{where}: wildcard action {action!r}")
        trust = "Principal" in statement  # trust and resource policies name principals
        if not trust:
            if "Resource" not in statement:
                problems.append(f"{where}: no Resource")
            for target in as_list(statement.get("Resource", [])):
                if target == "*":
                    problems.append(f"{where}: \"Resource\": \"*\" for {actions}")
        if statement.get("Effect") == "Allow" and not trust:
            print(f"  {where}: {', '.join(a for a in actions if isinstance(a, str))}")

if checked == 0:
    problems.append("no IAM statements found: did the transform drop the roles?")
if problems:
    for problem in problems:
        print(f"  problem: {problem}", file=sys.stderr)
    sys.exit(1)
print(f"{checked} statements checked: no wildcard actions, no \"Resource\": \"*\", "
      "no NotAction/NotResource, no managed policies")
EOF

step "deploy lint passed"
