"""The connection to one cluster: configuration, the ApiClient, raw JSON calls and error translation.

Calls go through ``ApiClient.call_api`` with ``_preload_content=False`` and the JSON is read as
plain dicts: the generated models cost about a second to import and validate nothing we need.
Every ApiException and transport error becomes one of our errors here, with the next step to take.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from distrodebug.errors import EngineUnreachable, PermissionDenied, UsageError
from distrodebug.runtimes.kubernetes import errors as kubeerrors

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@contextlib.contextmanager
def _plugin_errors() -> Iterator[list[str]]:
    """What the client logs when an exec credential plugin fails (it then goes on without one)."""
    failures: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if text.startswith("exec:"):
                failures.append(text.removeprefix("exec:").strip().rstrip("."))

    # Ours is the only root handler meanwhile: the plugin's failure is ours to report, once, and
    # logging.error() would otherwise install a stderr handler of its own.
    root = logging.getLogger()
    before = root.handlers[:]
    root.handlers = [Catch(logging.ERROR)]
    try:
        yield failures
    finally:
        root.handlers = before


class KubeClient:
    """The cluster kubectl would talk to: KUBECONFIG, --context, in-cluster config."""

    def __init__(self, context: str | None = None, namespace: str | None = None,
                 retries: int | None = None) -> None:
        self.configuration = client.Configuration()
        try:
            contexts, active = config.list_kube_config_contexts()
            if context:
                # Named but missing: say so. Falling back (to another context, or to the pod's
                # service account) would debug something the user did not ask for.
                active = next((c for c in contexts if c["name"] == context), None)
                if active is None:
                    raise UsageError(
                        f"The kubeconfig has no context '{context}'.",
                        f"Its contexts: {', '.join(sorted(c['name'] for c in contexts)) or 'none'}.")
            with _plugin_errors() as failures:
                config.load_kube_config(context=context, client_configuration=self.configuration)
            if failures:
                raise PermissionDenied(
                    f"The kubeconfig's credential plugin failed, so no credentials were sent: "
                    f"{failures[-1]}.",
                    "Run the plugin's login step (your cloud CLI's 'login' or "
                    "'get-credentials'), then try again; 'kubectl get pods' shows the same error.")
            default_ns = (active or {}).get("context", {}).get("namespace") or "default"
        except (ConfigException, FileNotFoundError, TypeError) as exc:
            if context:
                raise UsageError(f"The kubeconfig cannot be used with --context {context}: {exc}.",
                                 "Check KUBECONFIG and 'kubectl config get-contexts'.") from None
            try:
                config.load_incluster_config(client_configuration=self.configuration)
            except ConfigException:
                raise EngineUnreachable(
                    f"No Kubernetes configuration was found ({exc}).",
                    "Point KUBECONFIG at a kubeconfig file, pass --context, or run inside a pod "
                    "with a service account.",
                ) from None
            with open(SERVICE_ACCOUNT_NAMESPACE) as handle:
                default_ns = handle.read().strip()
        self.namespace = namespace or default_ns
        self.endpoint = str(self.configuration.host)
        if retries is not None:  # urllib3 retries a failed request 3 times by default
            self.configuration.retries = retries
        try:
            self.api = client.ApiClient(self.configuration)
        except ImportError as exc:  # a SOCKS proxy-url needs PySocks, which the client lacks
            proxy = str(self.configuration.proxy or "")
            raise EngineUnreachable(
                f"The kubeconfig's proxy-url is {proxy.partition('://')[0]}://, and the Kubernetes "
                f"client cannot use a SOCKS proxy here ({exc}); attach and exec streams "
                "(WebSocket) could not go through one anyway.",
                "Use an http:// proxy in the kubeconfig's proxy-url (or HTTPS_PROXY), or reach the "
                "API server directly (a VPN, or an SSH tunnel with -L instead of -D).") from None

    # -- plumbing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def calls(self, what: str, pod: str = "") -> Iterator[None]:
        """Translate API and transport errors raised while doing ``what``."""
        try:
            yield
        except ApiException as exc:
            raise kubeerrors.translate(exc, what, pod, self.namespace) from None
        except Exception as exc:  # urllib3 and socket errors: the API is out of reach
            if type(exc).__module__.startswith(("urllib3", "socket", "ssl")) or isinstance(exc, OSError):
                raise EngineUnreachable(
                    f"The Kubernetes API at {self.endpoint} cannot be reached: {exc}.",
                    "Check the cluster address with 'kubectl cluster-info' and your network.",
                ) from None
            raise

    def _send(self, method: str, path: str, query: Mapping[str, Any] | None, body: Any,
              headers: dict[str, str], timeout: float | None) -> Any:
        """The urllib3 response of one call, not read yet; ApiException for any non-2xx answer."""
        method, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers,
            body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=headers, body=body,
                                     _request_timeout=timeout).response
        if not 200 <= response.status < 300:
            data = response.data
            raise ApiException(http_resp=response, body=data.decode("utf-8", "replace"), data=None)
        return response

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json",
                timeout: float | None = None) -> dict[str, Any]:
        """One API call; the answer as a dict. Raises ApiException (translate with ``calls``)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        data = self._send(method, path, query, body, headers, timeout).data
        return dict(json.loads(data)) if data else {}

    def raw(self, path: str, query: Mapping[str, Any] | None = None) -> bytes:
        """A GET whose answer is not JSON (logs)."""
        return bytes(self._send("GET", path, query, None, {"Accept": "*/*"}, None).data)

    def pods_path(self, name: str = "", sub: str = "") -> str:
        path = f"/api/v1/namespaces/{quote(self.namespace, safe='')}/pods"
        if name:
            path += f"/{quote(name, safe='')}"
        return f"{path}/{sub}" if sub else path

    # -- pods ----------------------------------------------------------------------------------
    def read_pod(self, name: str) -> dict[str, Any]:
        with self.calls(f"reading pod '{name}'", name):
            pod = self.request("GET", self.pods_path(name))
        return pod

    def list_pods(self, label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:
        query = {k: v for k, v in (("labelSelector", label_selector),
                                   ("fieldSelector", field_selector)) if v}
        with self.calls("listing pods"):
            return list(self.request("GET", self.pods_path(), query=query).get("items") or [])

    def add_ephemeral(self, pod: str, body: Mapping[str, Any]) -> dict[str, Any]:
        # A strategic merge patch that names only the new container appends it (merge key: name).
        with self.calls(f"adding an ephemeral debug container to pod '{pod}'", pod):
            return self.request("PATCH", self.pods_path(pod, "ephemeralcontainers"),
                                body={"spec": {"ephemeralContainers": [dict(body)]}},
                                content_type="application/strategic-merge-patch+json")

    def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        with self.calls(f"creating pod '{name}'", name):
            return self.request("POST", self.pods_path(), body=dict(manifest))

    def delete_pod(self, name: str) -> None:
        """Delete a pod of ours at once; one already gone is fine."""
        try:
            self.request("DELETE", self.pods_path(name), body={"gracePeriodSeconds": 0})
        except ApiException as exc:
            if exc.status == 404:
                return
            raise kubeerrors.translate(exc, f"deleting pod '{name}'", name, self.namespace) from None

    def watch_pod(self, name: str, resource_version: str, seconds: float) -> Iterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) of one pod, from ``resource_version``, for a while."""
        query = {"fieldSelector": f"metadata.name={name}", "watch": "true",
                 "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(max(1, int(seconds)))}
        response = self._send("GET", self.pods_path(), query, None, {"Accept": "application/json"},
                              seconds + 5)
        try:
            pending = b""
            for chunk in response.stream(1 << 16, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()

    def create_event(self, event: Mapping[str, Any]) -> str:
        """Post a core/v1 Event; "" when it was made, else why not (never raises: an Event is a
        courtesy to the cluster's history, not worth ending a session over)."""
        namespace = str(event["metadata"]["namespace"])
        pod = str(event["involvedObject"]["name"])
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/events"
        try:
            self.request("POST", path, body=dict(event), timeout=10)
        except ApiException as exc:
            if exc.status in (401, 403):
                return (f"no Event was left on pod '{pod}': you may not create events in "
                        f"namespace '{namespace}' (the session is recorded locally only)")
            return f"no Event was left on pod '{pod}': the API answered {exc.status} {exc.reason}"
        except Exception as exc:  # the session goes on; the transport's trouble shows elsewhere
            return f"no Event was left on pod '{pod}': {exc}"
        return ""

    def read(self, path: str, what: str, name: str = "") -> dict[str, Any]:
        """GET any API path, as a dict."""
        with self.calls(what, name):
            return self.request("GET", path)



def pod_names(timeout: float = 0.5, namespace: str | None = None,
              context: str | None = None) -> list[str]:
    """Names of the pods in ``namespace`` (default: the context's), for shell completion: one
    list call, never retried (a Tab press waits ``timeout`` at most for the API)."""
    kube = KubeClient(context=context, namespace=namespace, retries=0)
    with kube.calls("listing pods"):
        listed = kube.request("GET", kube.pods_path(), timeout=timeout)
    return sorted(p["metadata"]["name"] for p in listed.get("items") or [])
