"""One factory: open the runtime (Docker engine or Kubernetes cluster) a target names.

The runtime packages import their SDKs; this module imports them only when asked, so commands
that need neither (verify, report) pay for neither, and an SDK that will not import becomes one
clear error instead of a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from distrodebug.errors import DistrodebugError
from distrodebug.target import Target

if TYPE_CHECKING:
    from distrodebug.runtimes.docker.runtime import DockerRuntime
    from distrodebug.runtimes.kubernetes.runtime import KubernetesRuntime


def _missing(what: str, package: str, exc: ImportError) -> DistrodebugError:
    return DistrodebugError(
        f"The {what} support cannot be loaded: {exc}.",
        f"Reinstall distrodebug with its dependencies ('pip install --force-reinstall distrodebug'), "
        f"or install the {package} package into the same environment.",
    )


def docker_runtime() -> DockerRuntime:
    """The Docker engine the docker CLI would use (DOCKER_HOST, docker context, default socket)."""
    try:
        from distrodebug.runtimes.docker.runtime import DockerRuntime
    except ImportError as exc:
        raise _missing("Docker", "docker", exc) from None
    return DockerRuntime()


def kubernetes_runtime(context: str | None = None, namespace: str | None = None) -> KubernetesRuntime:
    """The cluster kubectl would use (KUBECONFIG, --context, in-cluster service account)."""
    try:
        from distrodebug.runtimes.kubernetes.client import KubeClient
        from distrodebug.runtimes.kubernetes.runtime import KubernetesRuntime
    except ImportError as exc:
        raise _missing("Kubernetes", "kubernetes", exc) from None
    return KubernetesRuntime(KubeClient(context=context, namespace=namespace))


def open_runtime(target: Target, context: str | None = None) -> DockerRuntime | KubernetesRuntime:
    """The runtime ``target`` lives on."""
    if target.runtime == "kubernetes":
        return kubernetes_runtime(context, target.namespace)
    return docker_runtime()
