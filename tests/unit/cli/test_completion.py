"""Completion through the entry point, as bash, zsh and fish call it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path


def complete(shell: str, words: str, cword: int | None = None, **extra: str) -> str:
    env = {**os.environ, "_DISTRODEBUG_COMPLETE": f"complete_{shell}", **extra}
    if shell == "bash":
        env.update(COMP_WORDS=words, COMP_CWORD=str(cword if cword is not None else
                                                     len(words.split()) - 1))
    else:
        env["_TYPER_COMPLETE_ARGS"] = words
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    done = subprocess.run([sys.executable, "-m", "distrodebug"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def test_commands_complete_in_bash() -> None:
    assert "forward" in complete("bash", "distrodebug fo").split()
    assert {"build", "list"} <= set(complete("bash", "distrodebug toolbox ", 2).split())


def test_options_complete_in_zsh_and_fish() -> None:
    assert "--with" in complete("zsh", "distrodebug shell --wi")
    assert "--with" in complete("fish", "distrodebug exec --wi")


def test_target_completion_is_silent_without_an_engine() -> None:
    out = complete("bash", "distrodebug shell x", DOCKER_HOST="unix:///nonexistent.sock")
    assert out.strip() == ""


def test_install_completion_is_offered() -> None:
    done = subprocess.run([sys.executable, "-m", "distrodebug", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert "--install-completion" in done.stdout


def test_pod_completion_asks_a_silent_api_server_once(tmp_path: Path) -> None:
    """Each Tab press waits at most one 0.5 s request: urllib3's default retries made it four
    (2 s and more per press) when the API server accepted connections but never answered."""
    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        def hold() -> None:
            with contextlib.suppress(OSError):
                while True:
                    accepted.append(silent.accept()[0])

        threading.Thread(target=hold, daemon=True).start()
        config = tmp_path / "kubeconfig"
        config.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "silent",
            "clusters": [{"name": "silent", "cluster": {
                "server": f"https://127.0.0.1:{silent.getsockname()[1]}",
                "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "u"}}]}))
        out = complete("bash", "distrodebug shell pod/", KUBECONFIG=str(config),
                       DOCKER_HOST="unix:///nonexistent.sock")
        connections = len(accepted)
    for conn in accepted:
        conn.close()
    assert out.strip() == ""
    assert connections == 1, f"{connections} connections for one Tab press"


def kubectl_complete(*words: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`kubectl_complete-distrodebug WORDS...`, as kubectl runs it (the console script's code)."""
    return subprocess.run(
        [sys.executable, "-c", "from distrodebug.cli.kubectl_complete import main; main()",
         *words], env={**os.environ, **extra}, capture_output=True, text=True, timeout=30)


def test_kubectl_plugin_completion_prints_candidates_and_a_directive() -> None:
    done = kubectl_complete("sh")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == ["shell", ":4"]
    assert "--with" in kubectl_complete("exec", "--wi").stdout.splitlines()


def test_kubectl_plugin_completion_is_silent_and_offers_files_when_nothing_answers() -> None:
    done = kubectl_complete("shell", "", KUBECONFIG="/nonexistent",
                            DOCKER_HOST="unix:///nonexistent.sock")
    assert (done.returncode, done.stdout, done.stderr) == (0, ":0\n", "")
