import { ErrorCode, GrpcStatus, InferneoError } from '../../errors.js';

/**
 * Triton's failures as InferneoErrors, in one place for both protocols: HTTP status (with Triton's
 * `{"error": "..."}` body) or gRPC status, and transport failures. The message names the endpoint
 * and keeps Triton's own words, so that a refused load or a bad request reads as Triton wrote it.
 */

/** Triton's messages may span lines (Python tracebacks); one line reads better in logs and replies. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

const HTTP_CODES: Readonly<Record<number, ErrorCode>> = {
  400: ErrorCode.INVALID_ARGUMENT,
  404: ErrorCode.NOT_FOUND,
  408: ErrorCode.DEADLINE_EXCEEDED,
  409: ErrorCode.ALREADY_EXISTS,
  413: ErrorCode.PAYLOAD_TOO_LARGE,
  429: ErrorCode.RESOURCE_EXHAUSTED,
  499: ErrorCode.CANCELLED,
  501: ErrorCode.UNSUPPORTED,
  502: ErrorCode.UNAVAILABLE,
  503: ErrorCode.UNAVAILABLE,
  504: ErrorCode.DEADLINE_EXCEEDED,
};

const GRPC_CODES: Readonly<Record<number, ErrorCode>> = {
  [GrpcStatus.CANCELLED]: ErrorCode.CANCELLED,
  [GrpcStatus.INVALID_ARGUMENT]: ErrorCode.INVALID_ARGUMENT,
  [GrpcStatus.DEADLINE_EXCEEDED]: ErrorCode.DEADLINE_EXCEEDED,
  [GrpcStatus.NOT_FOUND]: ErrorCode.NOT_FOUND,
  [GrpcStatus.ALREADY_EXISTS]: ErrorCode.ALREADY_EXISTS,
  [GrpcStatus.RESOURCE_EXHAUSTED]: ErrorCode.RESOURCE_EXHAUSTED,
  [GrpcStatus.UNIMPLEMENTED]: ErrorCode.UNSUPPORTED,
  [GrpcStatus.UNAVAILABLE]: ErrorCode.UNAVAILABLE,
};

/** Transport error codes (Node sockets, undici) that mean the call timed out rather than failed to connect. */
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** An error answer of Triton's HTTP API. */
export function tritonHttpError(status: number, body: Buffer, endpoint: string): InferneoError {
  let message = body.toString('utf8').trim();
  try {
    const parsed = JSON.parse(message) as { error?: unknown };
    if (typeof parsed.error === 'string') message = parsed.error;
  } catch {
    // not JSON: keep the text as it is
  }
  const code = HTTP_CODES[status] ?? (status >= 500 ? ErrorCode.INTERNAL : ErrorCode.INVALID_ARGUMENT);
  return new InferneoError(code, `Triton ${endpoint}: ${oneLine(message) || `HTTP ${status}`}`);
}

/** An error status of Triton's gRPC API (`UNAVAILABLE` also stands for "cannot connect" in gRPC). */
export function tritonGrpcError(status: number, details: string, endpoint: string): InferneoError {
  const code = GRPC_CODES[status] ?? ErrorCode.INTERNAL;
  return new InferneoError(code, `Triton ${endpoint}: ${oneLine(details) || `gRPC status ${status}`}`);
}

/** A failure below the protocol: refused or reset connections, timeouts. */
export function tritonTransportError(err: unknown, endpoint: string, timeoutMs: number): InferneoError {
  if (err instanceof InferneoError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  if (TIMEOUTS.has(code)) {
    return new InferneoError(ErrorCode.DEADLINE_EXCEEDED, `Triton ${endpoint} did not answer within ${timeoutMs} ms`, { cause: err });
  }
  return new InferneoError(ErrorCode.UNAVAILABLE, `Triton ${endpoint} cannot be reached: ${message}${code !== '' && !message.includes(code) ? ` (${code})` : ''}`, {
    cause: err,
  });
}

/** Failures that say the endpoint, not the request, is in trouble: they count against its circuit. */
export function isEndpointFailure(err: InferneoError): boolean {
  return err.code === ErrorCode.UNAVAILABLE || err.code === ErrorCode.DEADLINE_EXCEEDED;
}

/** Failures worth another attempt (perhaps on another endpoint): the call did not reach a working server. */
export function isRetryable(err: InferneoError): boolean {
  return err.code === ErrorCode.UNAVAILABLE;
}
