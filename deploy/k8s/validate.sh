#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s without a cluster and without fetching
# schemas at run time:
#   1. `kustomize build` renders the kustomization (catches kustomize errors, generates
#      the policy ConfigMap);
#   2. kubeconform checks the rendered output and every manifest file here, strictly
#      (unknown fields are errors), against the Kubernetes JSON schemas shipped in the
#      PyPI package `kubernetes-validate`, and ScaledObject against a schema converted
#      from KEDA's own CRD (the Go module github.com/kedacore/keda/v2);
#   3. when a conclave binary exists, `policy validate` and `policy test` on policy.yaml.
# Tools and schemas are installed once from the package registries into
# $CONCLAVE_CACHE/k8s-validate (default $HOME/.cache/conclave); later runs are offline.
#
# Usage: deploy/k8s/validate.sh [DIR]     (default: the folder holding this script)
# Exit status: 0 when everything checked is valid, 1 when something is invalid, 2 when a
# tool could not be installed.
# Environment: CONCLAVE_K8S_VERSION (schema set, default 1.33.0; the package ships
# 1.25.0..1.37.0), CONCLAVE_BIN (the conclave binary; default target/{debug,release}).
set -euo pipefail

K8S_VERSION="${CONCLAVE_K8S_VERSION:-1.33.0}"
KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2
KUBERNETES_VALIDATE_VERSION=1.37.0
KEDA_VERSION=v2.21.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(cd "${1:-$here}" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
cache="${CONCLAVE_CACHE:-$HOME/.cache/conclave}/k8s-validate"

log() { echo "validate.sh: $*"; }
die() { echo "validate.sh: error: $*" >&2; exit 2; }

# ------------------------------------------------------------------------------ tools
# `go install pkg@version` builds outside any module; GOTOOLCHAIN=local because these
# versions build with the machine's Go (newer kustomize releases need a newer one).
go_tool() { # NAME VERSION PACKAGE
  local bin="$cache/$1-$2/bin/$1"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || die "\`go\` is needed once to install $1 $2"
    log "installing $1 $2 (once) into $cache/$1-$2" >&2   # stdout is the path
    GOTOOLCHAIN=local GOBIN="$cache/$1-$2/bin" nice go install "$3@$2" >&2 \
      || die "go install $3@$2 failed"
  fi
  echo "$bin"
}
kubeconform="$(go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform)"
kustomize="$(go_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5)"

# A venv with kubernetes-validate: its wheel carries the schemas; it also brings PyYAML,
# which converts KEDA's CRD below.
venv="$cache/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (once) into $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 || die "pip install kubernetes-validate failed"
fi
py="$venv/bin/python"

# ---------------------------------------------------------------------------- schemas
# The package's "-local-strict" schemas reference "/api/_definitions.json" relative to
# their https $id, which kubeconform would fetch over the network; point the references
# at the local file instead.
k8s_schemas="$cache/schemas/kubernetes-v$K8S_VERSION-strict"
if [[ ! -f "$k8s_schemas/.complete" ]]; then
  log "preparing Kubernetes $K8S_VERSION schemas in $k8s_schemas"
  "$py" - "$K8S_VERSION" "$k8s_schemas" <<'PY' || die "cannot prepare the Kubernetes $K8S_VERSION schemas"
import os, pathlib, sys, kubernetes_validate
version, out = sys.argv[1], pathlib.Path(sys.argv[2])
src = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
if not src.is_dir():
    sys.exit(f"no schemas for Kubernetes {version} in kubernetes-validate (have: "
             + ", ".join(sorted(p.name for p in src.parent.iterdir())) + ")")
out.mkdir(parents=True, exist_ok=True)
target = '"' + (out / "_definitions.json").as_uri()
for f in src.glob("*.json"):
    (out / f.name).write_text(f.read_text().replace('"/api/_definitions.json', target))
(out / ".complete").write_text("")
PY
fi

# KEDA's ScaledObject CRD, from the KEDA Go module, turned into a JSON schema the way
# kubeconform's openapi2jsonschema does: the CRD's openAPIV3Schema, with unknown fields
# refused (strict) and int-or-string made explicit.
crd_schemas="$cache/schemas/keda-$KEDA_VERSION"
skip_kinds="Kustomization,Policy,PolicyTest"
if [[ ! -f "$crd_schemas/.complete" ]]; then
  log "preparing the KEDA $KEDA_VERSION ScaledObject schema in $crd_schemas"
  keda_dir="$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" 2>/dev/null \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))' 2>/dev/null || true)"
  crd="$keda_dir/config/crd/bases/keda.sh_scaledobjects.yaml"
  if [[ -n "$keda_dir" && -f "$crd" ]]; then
    "$py" - "$crd" "$crd_schemas" <<'PY' || die "cannot convert $crd"
import json, pathlib, sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)

def strict(node):
    if isinstance(node, dict):
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)

group = crd["spec"]["group"].split(".")[0]
kind = crd["spec"]["names"]["kind"].lower()
for v in crd["spec"]["versions"]:
    schema = v["schema"]["openAPIV3Schema"]
    strict(schema)
    (out / f"{kind}-{group}-{v['name']}.json").write_text(json.dumps(schema, indent=1))
(out / ".complete").write_text("")
PY
  else
    log "KEDA $KEDA_VERSION could not be fetched from the Go module proxy: ScaledObject is SKIPPED, not validated"
    skip_kinds="$skip_kinds,ScaledObject"
  fi
fi

# --------------------------------------------------------------------------- validate
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "kustomize build $dir"
if ! "$kustomize" build "$dir" >"$work/kustomize-build.yaml"; then
  log "INVALID: kustomize build failed"
  exit 1
fi

manifests=()
for f in "$dir"/*.yaml; do
  [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
done

status=0
log "kubeconform (Kubernetes $K8S_VERSION schemas, strict); kinds not checked here: $skip_kinds"
# Policy and PolicyTest are Conclave documents (checked below); Kustomization by the build.
"$kubeconform" -strict -summary -verbose -output text \
  -schema-location "$k8s_schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -schema-location "$crd_schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -skip "$skip_kinds" \
  "$work/kustomize-build.yaml" "${manifests[@]}" || status=1

# ------------------------------------------------------------------- conclave policy
bin="${CONCLAVE_BIN:-}"
if [[ -z "$bin" ]]; then
  for b in "${CARGO_TARGET_DIR:-$repo_root/target}"/{debug,release}/conclave; do
    [[ -x "$b" ]] && { bin="$b"; break; }
  done
fi
if [[ -n "$bin" && -x "$bin" ]]; then
  if [[ -f "$dir/policy.yaml" ]]; then
    log "$bin policy validate policy.yaml"
    (cd "$dir" && "$bin" policy validate policy.yaml) || status=1
  fi
  if [[ -f "$dir/policy_test.yaml" ]]; then
    log "$bin policy test policy_test.yaml"
    (cd "$dir" && "$bin" policy test policy_test.yaml) || status=1
  fi
else
  log "SKIPPED: the policy checks (no conclave binary; build one or set CONCLAVE_BIN)"
fi

if [[ $status -eq 0 ]]; then
  log "all checked manifests are valid"
else
  log "INVALID: see above"
fi
exit $status
