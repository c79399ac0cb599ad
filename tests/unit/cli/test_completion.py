"""Completion through the entry point, as bash, zsh and fish call it."""

from __future__ import annotations

import os
import subprocess
import sys


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
