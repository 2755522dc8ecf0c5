#!/usr/bin/env bash
# What the operator's ServiceAccount may do, as comparable lines, from three sources:
#
#   hack/chart/rbac.sh live NAMESPACE SA_NAMESPACE SA_NAME
#       what a real API server grants: `kubectl auth can-i --list` as the ServiceAccount in
#       NAMESPACE ($KUBECTL, default kubectl, with the current KUBECONFIG)
#   hack/chart/rbac.sh expected SECTION...
#       the union of those sections of charts/modelserver-operator/rbac-expected.txt
#   hack/chart/rbac.sh rendered MANIFESTS NAMESPACE SA_NAMESPACE SA_NAME
#       what the (Cluster)Roles and bindings in a rendered manifest grant the ServiceAccount in
#       NAMESPACE, without a cluster
#   hack/chart/rbac.sh normalize < can-i-output
#
# One line per rule and resource: `RESOURCE [NON-RESOURCE URLS] [RESOURCE NAMES] [VERBS]`, as
# `kubectl auth can-i --list` prints it, with the columns separated by one space, `-` for an
# empty resource column, the verbs sorted, and the lines sorted and unique.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
expected_file=$root/charts/modelserver-operator/rbac-expected.txt

die() { echo "rbac.sh: $*" >&2; exit 2; }

normalize() {
  # Columns are found by the header's positions (the resource column may be empty).
  awk '
    NR == 1 {
      urls = index($0, "Non-Resource URLs"); names = index($0, "Resource Names"); verbs = index($0, "Verbs")
      if (!urls || !names || !verbs) { print "rbac.sh: not kubectl auth can-i --list output: " $0 > "/dev/stderr"; exit 3 }
      next
    }
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    {
      resource = trim(substr($0, 1, urls - 1)); if (resource == "") resource = "-"
      u = trim(substr($0, urls, names - urls)); n = trim(substr($0, names, verbs - names))
      v = trim(substr($0, verbs)); gsub(/^\[|\]$/, "", v)
      count = split(v, list, " ")
      for (i = 2; i <= count; i++) { x = list[i]; for (j = i - 1; j >= 1 && list[j] > x; j--) list[j + 1] = list[j]; list[j + 1] = x }
      sorted = ""; for (i = 1; i <= count; i++) sorted = sorted (i > 1 ? " " : "") list[i]
      print resource " " u " " n " [" sorted "]"
    }' | LC_ALL=C sort -u
}

case "${1:-}" in
  normalize) normalize ;;
  live)
    [ $# -eq 4 ] || die "usage: $0 live NAMESPACE SA_NAMESPACE SA_NAME"
    "${KUBECTL:-kubectl}" auth can-i --list --namespace "$2" --as "system:serviceaccount:$3:$4" | normalize
    ;;
  expected)
    shift
    [ $# -ge 1 ] || die "usage: $0 expected SECTION..."
    for section in "$@"; do
      grep -qxF "[$section]" "$expected_file" || die "no section [$section] in $expected_file"
    done
    awk -v want=" $* " '
      /^#/ || /^[[:space:]]*$/ { next }
      /^\[.*\]$/ { name = substr($0, 2, length($0) - 2); on = index(want, " " name " ") > 0; next }
      on { print }' "$expected_file" | LC_ALL=C sort -u
    ;;
  rendered)
    [ $# -eq 5 ] || die "usage: $0 rendered MANIFESTS NAMESPACE SA_NAMESPACE SA_NAME"
    python=$("$root/hack/venv.sh")
    "$python" - "$2" "$3" "$4" "$5" <<'PY' | LC_ALL=C sort -u
import sys, yaml
path, namespace, sa_namespace, sa_name = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
roles = {(d["kind"], d["metadata"].get("namespace")): None for d in []}
by_key = {}
for d in docs:
    if d["kind"] in ("ClusterRole", "Role"):
        by_key[(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])] = d
def subject_matches(s):
    return s.get("kind") == "ServiceAccount" and s.get("name") == sa_name and s.get("namespace", sa_namespace) == sa_namespace
for d in docs:
    if d["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
        continue
    if d["kind"] == "RoleBinding" and d["metadata"].get("namespace") != namespace:
        continue
    if not any(subject_matches(s) for s in d.get("subjects", [])):
        continue
    ref = d["roleRef"]
    role_ns = None if ref["kind"] == "ClusterRole" else d["metadata"].get("namespace")
    role = by_key.get((ref["kind"], role_ns, ref["name"]))
    if role is None:
        sys.exit(f"rbac.sh: {d['kind']} {d['metadata']['name']} refers to {ref['kind']} {ref['name']}, not in {path}")
    for rule in role.get("rules", []):
        verbs = "[" + " ".join(sorted(rule["verbs"])) + "]"
        names = "[" + " ".join(rule.get("resourceNames", [])) + "]"
        for url in rule.get("nonResourceURLs", []):
            print(f"- [{url}] [] {verbs}")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                base, _, sub = resource.partition("/")
                name = base + ("." + group if group else "") + ("/" + sub if sub else "")
                print(f"{name} [] {names} {verbs}")
PY
    ;;
  *) die "usage: $0 live|expected|rendered|normalize ..." ;;
esac
