"""`metav1.Status` errors with the texts kube-apiserver uses.

Every failure leaves the double as an `ApiError`; the HTTP layer turns it into the JSON `Status`
body. Messages follow `k8s.io/apimachinery/pkg/api/errors` and `util/validation/field` so that
clients (kubectl, the Python client, distrodebug) see exactly what a real cluster would say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def qualified(resource: str, group: str = "") -> str:
    """`pods` or `deployments.apps`: the GroupResource string used in messages."""
    return f"{resource}.{group}" if group else resource


class ApiError(Exception):
    """A request that fails with a `Status` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(resource: str, group: str, name: str | None) -> dict[str, Any]:
    # StatusDetails fields are omitempty, so empty name/group vanish from the JSON.
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        _details(resource, group, name),
    )


def no_such_route() -> ApiError:
    # The generic 404 for an unregistered path or subresource: details present but empty, which
    # is how kubectl tells "no ephemeralcontainers subresource" from "no such pod".
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        _details(resource, group, name),
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {qualified(resource, group)} \"{name}\": the object "
        "has been modified; please apply your changes to the latest version and try again",
        _details(resource, group, name),
    )


def forbidden(resource: str, name: str | None, reason: str, group: str = "") -> ApiError:
    subject = qualified(resource, group)
    if name:
        message = f'{subject} "{name}" is forbidden: {reason}'
    else:
        message = f"{subject} is forbidden: {reason}"
    return ApiError(403, "Forbidden", message, _details(resource, group, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f'the body of the request was in an unknown format - accepted media types include: '
        f"application/json, application/yaml, application/vnd.kubernetes.protobuf "
        f'(got "{content_type}")',
    )


def internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def unprocessable_patch(error: str) -> ApiError:
    # apiserver's NewGenericServerResponse(422, ...) for a JSON patch that does not apply.
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": error}]},
    )


def _go_quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_TYPE_TEXT = {
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "Required": ("FieldValueRequired", "Required value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "NotFound": ("FieldValueNotFound", "Not found"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
}


@dataclass
class FieldError:
    """One `field.Error`: `spec.x: Forbidden: detail` and its StatusCause."""

    kind: str
    field: str
    detail: str = ""
    value: Any = None

    def body(self) -> str:
        _, text = _TYPE_TEXT[self.kind]
        if self.kind in ("Forbidden", "Required"):
            return f"{text}: {self.detail}" if self.detail else text
        body = f"{text}: {_go_quote(self.value)}"
        return f"{body}: {self.detail}" if self.detail else body

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> dict[str, str]:
        reason, _ = _TYPE_TEXT[self.kind]
        return {"reason": reason, "message": self.body(), "field": self.field}


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """422 Invalid, formatted like `errors.NewInvalid` (brackets only for several errors)."""
    texts = [str(e) for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details)
