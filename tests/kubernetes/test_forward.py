"""forward to a pod: a loopback-only HTTP server in the shell-less Python app, reached from here
through the kubelet's port forwarding, 50 concurrent requests with byte-exact bodies."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.docker.test_forward import SERVER, body
from tests.fixtures.cluster import Cluster, pod


def test_forward_to_a_pods_loopback_only_port(cluster: Cluster, ns: str) -> None:
    app = pod("web", cluster.images["python"], user=65532,
              command=["/usr/bin/python3.11", "-u", "-c", SERVER])
    app["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["/usr/bin/python3.11", "-c",
                             "import socket; socket.create_connection(('127.0.0.1', 8000))"]},
        "periodSeconds": 1}
    cluster.apply(app, namespace=ns)
    cluster.wait_ready("web", ns)
    proc = subprocess.Popen([sys.executable, "-m", "distrodebug", "forward", "pod/web", "0:8000",
                             "-n", ns], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=cluster.dd_env())
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"forwarding 127\.0\.0\.1:(\d+) ", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        port = int(found[1])

        def get(n: int) -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{n}", timeout=60) as reply:
                return bool(reply.read() == body(n))

        with ThreadPoolExecutor(50) as workers:
            results = list(workers.map(get, range(1, 51)))
        assert all(results), f"{results.count(False)} of 50 bodies differ"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # Nothing was added to the pod: no ephemeral container, no relay.
    assert not cluster.get("pod", "web", ns)["spec"].get("ephemeralContainers")


def test_pod_names_complete_as_bash_asks(cluster: Cluster, ns: str, tmp_path: object) -> None:
    from pathlib import Path

    from tests.unit.cli.test_completion import complete

    cluster.apply(pod("completes-me", cluster.images["static"]), namespace=ns)
    # Completion lists the current context's namespace, as kubectl's does.
    config = Path(str(tmp_path)) / "kubeconfig"
    config.write_text(cluster.kubectl("config", "view", "--raw", "--minify").out)
    cluster.kubectl("config", "set-context", "--current", f"--namespace={ns}",
                    f"--kubeconfig={config}")
    words = complete("bash", "distrodebug shell pod/comp", KUBECONFIG=str(config)).split()
    assert "pod/completes-me" in words
    broken = complete("bash", "distrodebug shell pod/", KUBECONFIG="/nonexistent")
    assert "pod/" not in broken  # silent, and nothing invented


def test_kubectl_completes_pod_names_through_our_completion_executable(
        cluster: Cluster, ns: str, tmp_path: object) -> None:
    """The real kubectl finds kubectl_complete-distrodebug on PATH and shows what it prints."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cluster.apply(pod("tab-me", cluster.images["static"]), namespace=ns)
    config = Path(str(tmp_path)) / "kubeconfig"
    config.write_text(cluster.kubectl("config", "view", "--raw", "--minify").out)
    cluster.kubectl("config", "set-context", "--current", f"--namespace={ns}",
                    f"--kubeconfig={config}")
    scripts = Path(sys.executable).parent  # where pip put the console scripts
    assert (scripts / "kubectl_complete-distrodebug").exists()
    env = {**os.environ, "KUBECONFIG": str(config),
           "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["kubectl", "__complete", "distrodebug", "shell", "pod/tab"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["pod/tab-me", ":4"]
    # Only pods under kubectl: the local engine's containers are not what is meant there.
    every = subprocess.run(["kubectl", "__complete", "distrodebug", "exec", ""], env=env,
                           capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert every[-1] == ":4" and all(w.startswith("pod/") for w in every[:-1]), every
    # -n given before the target: that namespace's pods, not the context's (default here).
    config.write_text(cluster.kubectl("config", "view", "--raw", "--minify").out)
    named = subprocess.run(["kubectl", "__complete", "distrodebug", "shell", "-n", ns, "pod/t"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert named.stdout.splitlines() == ["pod/tab-me", ":4"], named.stderr
