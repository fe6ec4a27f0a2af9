/**
 * Every failure Inferneo reports carries a stable, machine-readable code. The codes are shared with
 * the Python worker (`worker/inferneo_worker/errors.py`, checked by a test) and translated to HTTP and
 * gRPC status here, in one place, so that the data plane, the admin API and the worker bridge agree.
 */

export const ErrorCode = {
  /** The request is malformed or does not match the model's inputs. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** No such model, version or route. */
  NOT_FOUND: 'NOT_FOUND',
  /** The model version exists but is not loaded anywhere. */
  MODEL_NOT_READY: 'MODEL_NOT_READY',
  /** Loading failed: bad file, bad config, an exception in `initialize`. */
  LOAD_FAILED: 'LOAD_FAILED',
  /** A datatype or feature that is not served. */
  UNSUPPORTED: 'UNSUPPORTED',
  /** The orchestrator does not know the worker that sent a message (worker protocol only). */
  UNKNOWN_WORKER: 'UNKNOWN_WORKER',
  /** A bug, or an exception in model code. */
  INTERNAL: 'INTERNAL',
  /** No worker can take the request now (none connected, shutting down, lost mid-request). */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The request body is larger than `http.max_request_bytes`. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** A queue or a limit is full; retry later. */
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  /** The request did not finish within its time limit. */
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  /** The caller went away or cancelled. */
  CANCELLED: 'CANCELLED',
  /** No credentials were given. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** The credentials given are not the right ones. */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** The path exists but not for this HTTP method. */
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  /** The operation conflicts with the current state (e.g. unloading what a route needs). */
  CONFLICT: 'CONFLICT',
  /** It exists already (registering a model or version twice). */
  ALREADY_EXISTS: 'ALREADY_EXISTS',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** gRPC status codes, as numbered by grpc/status.h. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const STATUS: Readonly<Record<ErrorCode, { http: number; grpc: number }>> = {
  INVALID_ARGUMENT: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  MODEL_NOT_READY: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  LOAD_FAILED: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  UNSUPPORTED: { http: 400, grpc: GrpcStatus.UNIMPLEMENTED },
  UNKNOWN_WORKER: { http: 500, grpc: GrpcStatus.INTERNAL },
  INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL },
  UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  PAYLOAD_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  RESOURCE_EXHAUSTED: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  DEADLINE_EXCEEDED: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED },
  CANCELLED: { http: 499, grpc: GrpcStatus.CANCELLED },
  UNAUTHENTICATED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED },
  PERMISSION_DENIED: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED },
  METHOD_NOT_ALLOWED: { http: 405, grpc: GrpcStatus.UNIMPLEMENTED },
  CONFLICT: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION },
  ALREADY_EXISTS: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS },
};

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(STATUS, value);
}

export function httpStatusOf(code: ErrorCode): number {
  return STATUS[code].http;
}

export function grpcStatusOf(code: ErrorCode): number {
  return STATUS[code].grpc;
}

/** Base class of every error Inferneo raises on purpose. `message` is safe to show to the caller. */
export class InferneoError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  get httpStatus(): number {
    return httpStatusOf(this.code);
  }
}

export class InvalidArgumentError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

export class NotFoundError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.NOT_FOUND, message);
  }
}

export class ModelNotReadyError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.MODEL_NOT_READY, message);
  }
}

export class LoadFailedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.LOAD_FAILED, message);
  }
}

export class UnsupportedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.UNSUPPORTED, message);
  }
}

export class UnavailableError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.UNAVAILABLE, message);
  }
}

export class PayloadTooLargeError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.PAYLOAD_TOO_LARGE, message);
  }
}

export class DeadlineExceededError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.DEADLINE_EXCEEDED, message);
  }
}

export class MethodNotAllowedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.METHOD_NOT_ALLOWED, message);
  }
}

export class ConflictError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.CONFLICT, message);
  }
}

export class AlreadyExistsError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.ALREADY_EXISTS, message);
  }
}

export class ResourceExhaustedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.RESOURCE_EXHAUSTED, message);
  }
}

export class UnauthenticatedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.UNAUTHENTICATED, message);
  }
}

export class PermissionDeniedError extends InferneoError {
  constructor(message: string) {
    super(ErrorCode.PERMISSION_DENIED, message);
  }
}

/** Start-up configuration that cannot be used; the message names the key and the bad value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Turns an error that crossed a process boundary (a worker's `{code, message}`) back into an
 * InferneoError. Unknown codes become INTERNAL so that a newer worker cannot confuse an older
 * orchestrator.
 */
export function errorFromWire(code: unknown, message: unknown): InferneoError {
  const text = typeof message === 'string' && message.length > 0 ? message : 'worker error';
  return new InferneoError(isErrorCode(code) ? code : ErrorCode.INTERNAL, text);
}

/** Any thrown value as an InferneoError; unexpected ones become INTERNAL, keeping the cause. */
/** Errors that say a dependency (Redis, a socket) could not be reached: the caller may retry later. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTCONN']);
function isUnreachable(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    (typeof code === 'string' && UNREACHABLE_CODES.has(code)) ||
    // ioredis, while Redis is down: its retry budget spent, or the connection closed.
    err.name === 'MaxRetriesPerRequestError' ||
    /^Connection is closed\.?$|Stream isn't writeable/.test(err.message)
  );
}

export function toInferneoError(err: unknown): InferneoError {
  if (err instanceof InferneoError) return err;
  if (err instanceof Error && isUnreachable(err)) {
    return new InferneoError(ErrorCode.UNAVAILABLE, `a dependency is unreachable (Redis?): ${err.message}; retry later`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new InferneoError(ErrorCode.INTERNAL, `internal error: ${message}`, { cause: err });
}
