#!/usr/bin/env python3
"""Renders deploy/kubernetes (kubectl kustomize, offline) and checks what deploy/README.md promises.

- deploy/kubernetes (the top level) renders the base plus the Prometheus Operator objects; the
  base alone renders no monitoring.coreos.com object (it must apply on clusters without the CRDs)
  and no Secret;
- the Deployment: one replica, Recreate, ports grpc 50051, https 8443 and metrics 9464, HTTP
  probes on the metrics port (startup + liveness: /healthz, readiness: /readyz), the drgate-tls
  Secret mounted at /run/secrets/drgate-tls, and the hardened
  security context (runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false,
  capabilities drop ALL, not privileged);
- the Service exposes 50051, 8443 and 9464 and selects the Deployment's pods;
- the NetworkPolicy selects drgate's pods, admits 50051 and 8443 only from drgate clients and 9464 only
  from the monitoring namespace, and allows egress only to DNS and 443/80/81;
- the ServiceMonitor selects the Service and scrapes its `metrics` port;
- the PrometheusRule's groups equal deploy/prometheus/drgate-alerts.yaml's groups (both parsed),
  and the committed PrometheusRule is what generate-prometheusrule.sh produces;
- examples/ renders a CronJob running drgatectl backup --wait against drgate.drgate.svc:50051
  with a date-derived request id, non-root, read-only root file system, admitted by the policy.

YAML is converted to JSON by kubectl itself (`kubectl annotate --local -o json`), so no Python
YAML module is needed; nothing talks to a cluster (KUBECONFIG points nowhere).
Standard library only. usage: check_kubernetes.py KUBECTL REPO_ROOT
"""
import json
import os
import re
import subprocess
import sys

MARK = "drgate-test/parsed"  # the annotation the kubectl conversion adds (removed again)

errors = []


def check(cond, message):
    if not cond:
        errors.append(message)
    return cond


def run(argv, stdin=None):
    env = dict(os.environ, KUBECONFIG="/nonexistent/drgate-test-kubeconfig")  # never a cluster
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def to_objects(kubectl, yaml_text):
    """Kubernetes-style YAML documents -> list of dicts, parsed by kubectl (offline)."""
    out = run([kubectl, "annotate", "--local", "-f", "-", "-o", "json", f"{MARK}=1"], yaml_text)
    objs, dec, i = [], json.JSONDecoder(), 0
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i >= len(out):
            break
        obj, i = dec.raw_decode(out, i)
        objs.extend(obj.get("items", []) if obj.get("kind") == "List" else [obj])
    for o in objs:
        ann = o.get("metadata", {}).get("annotations", {})
        ann.pop(MARK, None)
        if not ann:
            o["metadata"].pop("annotations", None)
    return objs


def render(kubectl, path):
    return to_objects(kubectl, run([kubectl, "kustomize", path]))


def one(objs, kind, where):
    found = [o for o in objs if o.get("kind") == kind]
    check(len(found) == 1, f"{where}: expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_container_security(where, c, pod_sc):
    sc = c.get("securityContext", {})
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot")
    check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    check(sc.get("privileged", False) is False, f"{where}: privileged")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities drop [ALL]")
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    check(isinstance(uid, int) and uid != 0, f"{where}: runAsUser must be a non-zero uid")


def check_deployment(objs):
    d = one(objs, "Deployment", "deploy/kubernetes")
    spec = d.get("spec", {})
    check(spec.get("replicas") == 1, "Deployment: replicas must be 1 (single SQLite writer)")
    check(spec.get("strategy", {}).get("type") == "Recreate", "Deployment: strategy Recreate")
    pod = spec.get("template", {}).get("spec", {})
    pod_sc = pod.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, "Deployment: pod runAsNonRoot")
    check(pod.get("automountServiceAccountToken") is False, "Deployment: no API token")
    cs = [c for c in pod.get("containers", []) if c.get("name") == "drgate"]
    if not check(len(cs) == 1, "Deployment: no container `drgate`"):
        return d
    c = cs[0]
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(ports == {"grpc": 50051, "https": 8443, "metrics": 9464}, f"Deployment: ports {ports}")
    # gRPC and HTTP/JSON are TLS; the kubelet's gRPC probes cannot speak TLS, so the probes are
    # HTTP on the plaintext metrics port.
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        check(g.get("port") == "metrics" and g.get("path") == path,
              f"Deployment: {probe} must be httpGet port metrics {path}, is {c.get(probe)}")
    mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts", [])}
    vols = {v.get("name"): v for v in pod.get("volumes", [])}
    tls = vols.get(mounts.get("/run/secrets/drgate-tls"), {}).get("secret", {})
    check(tls.get("secretName") == "drgate-tls",
          f"Deployment: the drgate-tls Secret is not mounted at /run/secrets/drgate-tls")
    check_container_security("Deployment container drgate", c, pod_sc)
    return d


def check_service(objs, pod_labels):
    s = one(objs, "Service", "deploy/kubernetes")
    spec = s.get("spec", {})
    ports = {p.get("name"): (p.get("port"), p.get("targetPort")) for p in spec.get("ports", [])}
    check(ports == {"grpc": (50051, "grpc"), "https": (8443, "https"),
                    "metrics": (9464, "metrics")},
          f"Service: ports {ports}")
    check(selects(spec.get("selector"), pod_labels), "Service: does not select drgate's pods")
    return s


def peer_ports(rule):
    return sorted((p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", []))


def check_networkpolicy(objs, pod_labels):
    n = one(objs, "NetworkPolicy", "deploy/kubernetes")
    spec = n.get("spec", {})
    check(selects(spec.get("podSelector", {}).get("matchLabels"), pod_labels),
          "NetworkPolicy: podSelector does not select drgate's pods")
    check(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"],
          "NetworkPolicy: policyTypes must be Ingress and Egress")
    by_port = {}
    for rule in spec.get("ingress", []):
        ports = peer_ports(rule)
        check(len(ports) == 1, f"NetworkPolicy: one port per ingress rule, got {ports}")
        check(rule.get("from"), f"NetworkPolicy: ingress to {ports} from everywhere")
        for p in ports:
            by_port[p] = rule.get("from", [])
    check(sorted(by_port) == [(8443, "TCP"), (9464, "TCP"), (50051, "TCP")],
          f"NetworkPolicy: ingress ports {sorted(by_port)}, expected 50051, 8443 and 9464")
    for peer in by_port.get((50051, "TCP"), []) + by_port.get((8443, "TCP"), []):
        sels = [peer.get(k, {}).get("matchLabels", {}) for k in ("podSelector", "namespaceSelector")]
        check(any(s.get("drgate-client") == "true" for s in sels) and "ipBlock" not in peer,
              f"NetworkPolicy: 50051/8443 peer {peer} is not restricted to drgate-client")
    for peer in by_port.get((9464, "TCP"), []):
        check(peer.get("namespaceSelector", {}).get("matchLabels") ==
              {"kubernetes.io/metadata.name": "monitoring"} and "podSelector" not in peer,
              f"NetworkPolicy: 9464 peer {peer} is not the monitoring namespace")
    egress = sorted(p for rule in spec.get("egress", []) for p in peer_ports(rule))
    check(egress == [(53, "TCP"), (53, "UDP"), (80, "TCP"), (81, "TCP"), (443, "TCP")],
          f"NetworkPolicy: egress ports {egress}, expected DNS and 443/80/81")
    check(all(peer_ports(r) for r in spec.get("egress", [])),
          "NetworkPolicy: an egress rule without ports allows everything")
    return n


def check_monitoring(objs, service, rules_path, kubectl):
    sm = one(objs, "ServiceMonitor", "deploy/kubernetes")
    check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor: apiVersion")
    sel = sm.get("spec", {}).get("selector", {}).get("matchLabels")
    check(selects(sel, service.get("metadata", {}).get("labels", {})),
          "ServiceMonitor: selector does not match the Service's labels")
    eps = sm.get("spec", {}).get("endpoints", [])
    check([e.get("port") for e in eps] == ["metrics"], "ServiceMonitor: endpoint port `metrics`")

    pr = one(objs, "PrometheusRule", "deploy/kubernetes")
    check(pr.get("apiVersion") == "monitoring.coreos.com/v1", "PrometheusRule: apiVersion")
    with open(rules_path, encoding="utf-8") as f:
        rule_text = f.read()
    wrapped = "apiVersion: drgate.test/v1\nkind: RuleFile\nmetadata:\n  name: rules\n" + rule_text
    source = to_objects(kubectl, wrapped)[0].get("groups")
    check(bool(source), f"{rules_path}: no groups parsed")
    generated = pr.get("spec", {}).get("groups")
    if not check(generated == source,
                 "PrometheusRule: spec.groups differ from " + rules_path +
                 " (run deploy/kubernetes/generate-prometheusrule.sh)"):
        for g, s in zip(generated or [], source or []):
            for rg, rs in zip(g.get("rules", []), s.get("rules", [])):
                if rg != rs:
                    errors.append(f"  first difference: {rg.get('alert') or rg.get('record')}")
                    break
    alerts = [r.get("alert") for g in source or [] for r in g.get("rules", [])]
    return alerts


def check_cronjob(objs):
    cj = one(objs, "CronJob", "deploy/kubernetes/examples")
    spec = cj.get("spec", {})
    check(len(spec.get("schedule", "").split()) == 5, "CronJob: schedule is not a cron line")
    check(spec.get("concurrencyPolicy") == "Forbid", "CronJob: concurrencyPolicy Forbid")
    tmpl = spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    pod = tmpl.get("spec", {})
    check(tmpl.get("metadata", {}).get("labels", {}).get("drgate-client") == "true",
          "CronJob: pod label drgate-client: \"true\" (the NetworkPolicy admits it)")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "CronJob: pod runAsNonRoot")
    check(pod.get("automountServiceAccountToken") is False, "CronJob: no API token")
    cs = pod.get("containers", [])
    if not check(len(cs) == 1, "CronJob: expected one container"):
        return
    c = cs[0]
    check_container_security("CronJob container", c, pod.get("securityContext", {}))
    script = " ".join(c.get("command", []) + c.get("args", []))
    script = re.sub(r"\\\n\s*", " ", script)
    check(c.get("command", [None])[0] == "sh", "CronJob: runs through sh -c")
    for word in ("drgatectl --server drgate.drgate.svc:50051 --output json", " ensure ",
                 "--commcell", "--type full", "--max-age ", "--wait ", "--wait-timeout 4h",
                 '--request-id "cron-full-$(date -u +%Y%m%d)"', '"$rc" -eq 6',
                 "--ca-file /run/secrets/drgate-tls/ca.crt"):
        check(word in script, f"CronJob: the command lacks {word!r}: {script}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    kubectl, root = sys.argv[1], sys.argv[2]
    k8s = os.path.join(root, "deploy", "kubernetes")
    rules_path = os.path.join(root, "deploy", "prometheus", "drgate-alerts.yaml")

    objs = render(kubectl, k8s)
    kinds = sorted(o.get("kind") for o in objs)
    expected = sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
                       "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"])
    check(kinds == expected, f"deploy/kubernetes renders {kinds}, expected {expected}")
    for o in objs:
        check(o.get("metadata", {}).get("namespace") == "drgate",
              f"{o.get('kind')}/{o['metadata'].get('name')}: namespace must be drgate")

    base = render(kubectl, os.path.join(k8s, "base"))
    check(not [o for o in base if o.get("apiVersion", "").startswith("monitoring.coreos.com/")],
          "base: must not need the Prometheus Operator's CRDs")
    check(not [o for o in objs + base if o.get("kind") == "Secret"],
          "a Secret is rendered: credentials must not be part of the manifests")

    d = check_deployment(objs)
    pod_labels = d.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    service = check_service(objs, pod_labels)
    check_networkpolicy(objs, pod_labels)
    alerts = check_monitoring(objs, service, rules_path, kubectl)

    gen = os.path.join(k8s, "generate-prometheusrule.sh")
    r = subprocess.run(["bash", gen, "--check"], capture_output=True, text=True)
    check(r.returncode == 0, "the committed PrometheusRule is stale:\n" + r.stderr)

    check_cronjob(render(kubectl, os.path.join(k8s, "examples")))

    # overlays/cert-manager: the base plus a Certificate writing the Secret the base mounts.
    cm = render(kubectl, os.path.join(k8s, "overlays", "cert-manager"))
    certs = [o for o in cm if o.get("kind") == "Certificate"]
    check(len(certs) == 1 and certs[0]["spec"].get("secretName") == "drgate-tls"
          and certs[0]["metadata"].get("namespace") == "drgate"
          and "drgate.drgate.svc" in certs[0]["spec"].get("dnsNames", []),
          f"overlays/cert-manager: one Certificate in drgate writing drgate-tls for "
          f"drgate.drgate.svc, got {certs}")

    for e in errors:
        print("check_kubernetes: " + e, file=sys.stderr)
    if not errors:
        print(f"check_kubernetes: {len(objs)} objects ({', '.join(kinds)}), "
              f"{len(alerts)} alert rules in the PrometheusRule, CronJob example: all checks passed")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"check_kubernetes: {e}", file=sys.stderr)
        sys.exit(1)
