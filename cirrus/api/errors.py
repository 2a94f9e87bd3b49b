"""Domain errors to HTTP responses, in each OpenStack service's own error shape."""

from __future__ import annotations

from http import HTTPStatus

from cirrus.api.responses import FastJSONResponse as JSONResponse

# Nova's fault names by status code.
_COMPUTE_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "HTTPMethodNotAllowed",
    406: "HTTPNotAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "HTTPUnsupportedMediaType",
    500: "computeFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}


# Neutron's error types when no more specific one is known: webob's exception names.
_NEUTRON_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    406: "HTTPNotAcceptable",
    409: "HTTPConflict",
    412: "HTTPPreconditionFailed",
    413: "HTTPRequestEntityTooLarge",
    414: "HTTPRequestURITooLong",
    415: "HTTPUnsupportedMediaType",
    431: "HTTPRequestHeaderFieldsTooLarge",
    500: "HTTPInternalServerError",
    503: "HTTPServiceUnavailable",
}


# Cinder's fault names by status code (webob faults as its API names them).
_VOLUME_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    501: "notImplemented",
    503: "serviceUnavailable",
}

SERVICES = ("identity", "compute", "image", "network", "volume")


def service_of(path: str) -> str:
    """The service whose error shape a request to `path` gets (identity's for the rest)."""
    for name in SERVICES:
        if path.startswith(f"/{name}"):
            return name
    return "identity"


def error_response(service: str, status: int, message: str, headers: dict | None = None,
                   error_type: str | None = None) -> JSONResponse:
    """The error body of `service`; `error_type` names the error where the shape has a
    place for it (Neutron's `type`, e.g. "NetworkNotFound")."""
    return JSONResponse(error_body(service, status, message, error_type), status_code=status,
                        headers=headers)


def error_body(service: str, status: int, message: str, error_type: str | None = None) -> dict:
    """The JSON error document of `service` (see error_response)."""
    title = HTTPStatus(status).phrase
    if service == "network":
        body: dict = {"NeutronError": {
            "type": error_type or _NEUTRON_TYPES.get(status, "HTTPError"),
            "message": message, "detail": ""}}
    elif service == "compute":
        body = {_COMPUTE_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    elif service == "volume":
        body = {_VOLUME_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    elif service == "identity":
        body = {"error": {"code": status, "message": message, "title": title}}
    else:  # image and anything else: what Glance's JSON errors carry
        body = {"code": status, "title": title, "message": message,
                "error": {"code": status, "message": message, "title": title}}
    return body
