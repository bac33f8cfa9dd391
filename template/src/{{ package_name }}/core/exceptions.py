"""Error types shared by every domain and the handlers that turn them into JSON.

Every error response has one shape:
    {"error": {"code": "post_not_found", "message": "Post not found", "details": []}}

The OpenAPI schema documents that shape for every error status an operation can answer:
routes list their own errors with `responses=error_responses(...)`,
`document_error_responses` adds the ones the framework produces (400, 401, 413, 422), and
`document_error` those that other modules raise for many operations at once.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# How long clients are asked to wait before retrying a 503.
RETRY_AFTER_SECONDS = 5
# SQLSTATE of a statement the server cancelled (PostgreSQL's statement_timeout).
QUERY_CANCELED = "57014"


class AppError(Exception):
    """Base class for errors that map to a client-facing HTTP response."""

    status_code: ClassVar[int] = status.HTTP_500_INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"
    message: ClassVar[str] = "Internal server error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = message or self.message
        # The class's headers, plus any this occurrence adds (e.g. a computed Retry-After).
        self.response_headers = {**(self.headers or {}), **(headers or {})}
        super().__init__(self.detail)


class NotFoundError(AppError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    message = "Resource not found"


class ConflictError(AppError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    message = "Resource conflicts with the current state"


class VersionConflictError(ConflictError):
    """A write based on an outdated version of the resource (optimistic concurrency)."""

    code = "version_conflict"
    message = "The resource was changed by another request: fetch it again and retry"


class NotAuthenticatedError(AppError):
    """401. The way of authenticating adds its challenge (`WWW-Authenticate`), if any."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "not_authenticated"
    message = "Missing or invalid credentials"


class PermissionDeniedError(AppError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    message = "You are not allowed to do this"


class RequestTooLargeError(AppError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE
    code = "request_too_large"
    message = "Request body is too large"


class ServiceUnavailableError(AppError):
    """A server the request needs cannot serve it now: the database (down, or no free
    pooled connection) or, where the project has it, Redis."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"
    message = "The service is temporarily unavailable: retry later"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}  # noqa: RUF012


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any]


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the errors a route raises, grouped by status."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(error.status_code, {"model": ErrorResponse})
        described = entry.get("description")
        entry["description"] = f"{described}; {error.message}" if described else error.message
    return responses


def app_error_response(error: AppError) -> JSONResponse:
    """The response an `AppError` gets, for handlers of other exception types."""
    return JSONResponse(
        error_body(error.code, error.detail),
        status_code=error.status_code,
        headers=error.response_headers,
    )


async def _app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101  # registered for AppError only
    return app_error_response(exc)


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    details = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse(
        jsonable_encoder(error_body("validation_error", "Request is invalid", details)),
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = "not_found" if exc.status_code == status.HTTP_404_NOT_FOUND else "http_error"
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _database_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Lost or refused connections, lock and statement timeouts, an exhausted pool: 503,
    not a 500.

    One warning line per request and no traceback: an outage must not flood the logs.
    Any other database error is a bug: re-raised, so it is logged and answered 500.
    """
    unavailable = isinstance(exc, OperationalError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError)
        and (exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED)
    )
    if not unavailable:
        raise exc
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).splitlines() or [type(cause).__name__])[0]
    logger.warning("Database unavailable: %s", reason)
    return app_error_response(ServiceUnavailableError())


async def _stale_data_handler(_request: Request, _exc: Exception) -> JSONResponse:
    """An UPDATE or DELETE matched no row at the version it read: a concurrent write won."""
    return app_error_response(VersionConflictError())


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    app.add_exception_handler(PoolTimeoutError, _database_error_handler)
    app.add_exception_handler(StaleDataError, _stale_data_handler)
    # Unhandled exceptions: core.middleware logs them once (with the request id) and
    # answers with error_body(AppError.code, AppError.message).


# Error statuses the framework answers by itself, documented on the operations concerned.
FRAMEWORK_ERRORS = {
    "400": "Request body could not be parsed",
    "401": NotAuthenticatedError.message,
    "413": RequestTooLargeError.message,
    "422": "Request is invalid",
}
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}

# Whether an operation, given its method and OpenAPI operation object, can answer an error.
OperationFilter = Callable[[str, dict[str, Any]], bool]
# Errors documented on the operations their filter picks: see `document_error`.
_shared_errors: list[tuple[str, str, OperationFilter]] = []


def document_error(status_code: int, description: str, *, on: OperationFilter) -> None:
    """Document an error on every operation `on(method, operation)` picks.

    For errors no route lists in `responses=` because many routes share them, such as those
    of a security dependency. Call it on import, before the schema is first generated.
    """
    _shared_errors.append((str(status_code), description, on))


def document_error_responses(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the error responses the app really sends.

    FastAPI documents 422 with its own `{"detail": [...]}` body; ours is `ErrorResponse`.
    Operations with a body can also answer 400 (unparsable) and 413 (too large),
    operations with a security requirement 401, and those a `document_error` filter picks
    its error. Every 4xx gets the `ErrorResponse` body.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components[ErrorResponse.__name__] = error_schema
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path in schema.get("paths", {}).values():
            for method, operation in path.items():
                _document_implicit_errors(method, operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to extend the schema


def _document_implicit_errors(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = ["422"] if "422" in responses else []
    if "requestBody" in operation:
        statuses += ["400", "413"]
    if operation.get("security"):
        statuses.append("401")
    errors = [(status_code, FRAMEWORK_ERRORS[status_code]) for status_code in statuses]
    errors += [
        (status_code, description)
        for status_code, description, applies in _shared_errors
        if applies(method, operation)
    ]
    for status_code, description in errors:
        described = responses.get(status_code, {}).get("description")
        responses[status_code] = {"description": described or description}
    for status_code, response in responses.items():
        if status_code.startswith("4"):  # every client error has the one error shape
            response["content"] = ERROR_CONTENT
