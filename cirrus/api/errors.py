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


def error_response(service: str, status: int, message: str, headers: dict | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase
    if service == "compute":
        body: dict = {_COMPUTE_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    elif service == "identity":
        body = {"error": {"code": status, "message": message, "title": title}}
    else:  # image and anything else: what Glance's JSON errors carry
        body = {"code": status, "title": title, "message": message,
                "error": {"code": status, "message": message, "title": title}}
    return JSONResponse(body, status_code=status, headers=headers)
