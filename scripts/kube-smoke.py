#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/kubernetes/ and plays them with `podman kube play`.

What a cluster would need to hold is checked on the manifests themselves: the Deployment's
probes name the admin listener's /healthz and /readyz, it runs non-root on a read-only root
file system with every capability dropped and resources set, the Services, the
PodDisruptionBudget and the HorizontalPodAutoscaler select or name the Deployment, the
ConfigMap's configuration passes `check-config` with the Secret's variables.

Then the ConfigMap and the Deployment are played by podman (one pod: podman plays one replica;
the Secret's variables given to the container directly, since podman 4.3 cannot read back a
Secret it played), with the Secret's store URL pointing at a Redis started here on a free loopback
port and the pod on the host's network: the pod starts, answers its probes, runs as the
manifest says, and serves one full verification whose result the Secret's API key fetches.

Run by scripts/container-smoke.sh after it built the image.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
BINARY = ROOT / "target/static/x86_64-unknown-linux-gnu/release/trustcaptcha-server"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def documents():
    """Every manifest, by kind and name."""
    found = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def check(manifests):
    """What a cluster would need, read from the manifests."""
    deployment = manifests[("Deployment", "trustcaptcha-server")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert deployment["spec"]["replicas"] >= 2, "several instances"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    args = container["args"]
    assert f"0.0.0.0:{ports['admin']}" == args[args.index("--admin-listen") + 1]
    assert f"0.0.0.0:{ports['http']}" == args[args.index("--listen") + 1]
    for probe, path in [("livenessProbe", "/healthz"), ("startupProbe", "/healthz"),
                        ("readinessProbe", "/readyz")]:
        assert container[probe]["httpGet"] == {"path": path, "port": "admin"}, probe
    secret = container["envFrom"][0]["secretRef"]["name"]
    config_map = pod["volumes"][0]["configMap"]["name"]
    for (kind, _), document in manifests.items():
        if kind == "Service":
            assert document["spec"]["selector"] == labels
            for port in document["spec"]["ports"]:
                assert port["targetPort"] in ports
    budget = manifests[("PodDisruptionBudget", "trustcaptcha-server")]
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    scaler = manifests[("HorizontalPodAutoscaler", "trustcaptcha-server")]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "trustcaptcha-server"
    assert scaler["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    return deployment, manifests[("Secret", secret)], manifests[("ConfigMap", config_map)]


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--work", required=True)
    options = parser.parse_args()
    work = Path(options.work)

    manifests = documents()
    deployment, secret, config_map = check(manifests)
    variables = secret["stringData"]
    config = work / "server.toml"
    config.write_text(config_map["data"]["server.toml"])
    subprocess.run([BINARY, "check-config", config], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **variables})

    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
         "--appendonly", "no", "--maxmemory", "64mb", "--maxmemory-policy", "noeviction",
         "--dir", str(work)],
        stdout=subprocess.DEVNULL)
    played = work / "played.yaml"
    try:
        # What differs here from a cluster: the image's tag, the Redis (one node on loopback,
        # without replicas to wait for), the host's network and free ports for the listeners.
        http, admin = free_port(), free_port()
        variables = dict(variables, TRUSTCAPTCHA_STORE__URL=f"redis://127.0.0.1:{redis_port}",
                         TRUSTCAPTCHA_STORE__WAIT_FOR_REPLICAS="0")
        pod = deployment["spec"]["template"]["spec"]
        pod["hostNetwork"] = True
        (container,) = pod["containers"]
        container["image"] = options.image
        # podman 4.3 cannot read back a Secret it played (containers/podman#17071): the
        # Secret's variables are given to the container as they would arrive through envFrom.
        del container["envFrom"]
        container["env"] = [{"name": name, "value": value} for name, value in variables.items()]
        args = container["args"]
        args[args.index("--listen") + 1] = f"127.0.0.1:{http}"
        args[args.index("--admin-listen") + 1] = f"127.0.0.1:{admin}"
        del container["ports"]  # the host's network maps none
        for probe in ["livenessProbe", "startupProbe", "readinessProbe"]:
            container[probe]["httpGet"]["port"] = admin
        deployment["spec"]["replicas"] = 1
        played.write_text(yaml.safe_dump_all([config_map, deployment]))
        subprocess.run(["podman", "kube", "play", "--replace", played], check=True,
                       stdout=subprocess.DEVNULL)

        base, admin_base = f"http://127.0.0.1:{http}", f"http://127.0.0.1:{admin}"
        deadline = time.monotonic() + 60
        while get(f"{admin_base}/readyz")[0] != 200:
            if time.monotonic() > deadline:
                subprocess.run(["podman", "logs", "--latest"])
                sys.exit("the pod did not become ready")
            time.sleep(0.2)
        for probe in ["livenessProbe", "startupProbe", "readinessProbe"]:
            path = container[probe]["httpGet"]["path"]
            assert get(f"{admin_base}{path}")[0] == 200, probe

        inspected = json.loads(subprocess.run(
            ["podman", "inspect", "--type", "container",
             *subprocess.run(["podman", "ps", "-q", "--filter", "ancestor=" + options.image,
                              "--filter", f"name=-{container['name']}$"],
                             check=True, capture_output=True, text=True).stdout.split()],
            check=True, capture_output=True, text=True).stdout)
        (server,) = inspected
        assert server["Config"]["User"].split(":")[0] == "65532", server["Config"]["User"]
        assert server["HostConfig"]["ReadonlyRootfs"] is True

        site = next(line.split('"')[1] for line in config.read_text().splitlines()
                    if line.startswith("site_key"))
        origin = next(line.split('"')[1] for line in config.read_text().splitlines()
                      if line.startswith("allowed_origins"))
        token = subprocess.run(
            [BINARY, "solve", "--api-url", base, "--site-key", site, "--origin", origin],
            check=True, capture_output=True, text=True).stdout.strip()
        verification = json.loads(base64.b64decode(token))["verificationId"]
        key = json.loads(variables["TRUSTCAPTCHA_SITE__SHOP__API_KEYS"])[0]
        status, body = get(f"{base}/v2/verifications/{verification}/results",
                           {"Authorization": f"Bearer {key}"})
        assert status == 200 and json.loads(body)["verificationPassed"] is True, (status, body)
        print("kubernetes manifests ok: checked, played by podman, probes pass, "
              "one verification through the pod")
    finally:
        subprocess.run(["podman", "kube", "down", played], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        redis.kill()
        redis.wait()


if __name__ == "__main__":
    main()
