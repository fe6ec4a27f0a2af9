import assert from 'node:assert/strict';
import {
  ErrorCode,
  errorFromWire,
  GrpcStatus,
  grpcStatusOf,
  httpStatusOf,
  InferneoError,
  InvalidArgumentError,
  isErrorCode,
  toInferneoError,
} from '../src/errors.js';
import { python } from './helpers.js';

describe('errors', () => {
  it('maps every code to an HTTP and a gRPC status', () => {
    for (const code of Object.values(ErrorCode)) {
      assert.ok(httpStatusOf(code) >= 400, code);
      assert.ok(Object.values(GrpcStatus).includes(grpcStatusOf(code) as never), code);
    }
    assert.equal(httpStatusOf(ErrorCode.NOT_FOUND), 404);
    assert.equal(httpStatusOf(ErrorCode.INVALID_ARGUMENT), 400);
    assert.equal(httpStatusOf(ErrorCode.UNAVAILABLE), 503);
    assert.equal(httpStatusOf(ErrorCode.PAYLOAD_TOO_LARGE), 413);
    assert.equal(grpcStatusOf(ErrorCode.RESOURCE_EXHAUSTED), GrpcStatus.RESOURCE_EXHAUSTED);
  });

  it('keeps the code of subclasses and names them', () => {
    const err = new InvalidArgumentError('bad');
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.name, 'InvalidArgumentError');
    assert.equal(err.httpStatus, 400);
    assert.ok(err instanceof InferneoError);
  });

  it('translates wire errors, unknown codes becoming INTERNAL', () => {
    assert.equal(errorFromWire('NOT_FOUND', 'no such model').code, 'NOT_FOUND');
    assert.equal(errorFromWire('SOMETHING_NEW', 'x').code, 'INTERNAL');
    assert.equal(errorFromWire(42, undefined).message, 'worker error');
    assert.ok(isErrorCode('UNAVAILABLE'));
    assert.ok(!isErrorCode('toString'));
  });

  it('wraps unexpected errors as INTERNAL keeping the cause', () => {
    const cause = new TypeError('boom');
    const err = toInferneoError(cause);
    assert.equal(err.code, 'INTERNAL');
    assert.equal(err.cause, cause);
    assert.equal(toInferneoError(err), err);
    assert.equal(toInferneoError('text').message, 'internal error: text');
  });

  it('turns an unreachable dependency (Redis down, refused connection) into UNAVAILABLE (503), not INTERNAL', () => {
    const closed = toInferneoError(new Error('Connection is closed.'));
    assert.equal(closed.code, 'UNAVAILABLE');
    assert.match(closed.message, /unreachable.*Connection is closed.*retry later/);
    const retries = Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' });
    assert.equal(toInferneoError(retries).code, 'UNAVAILABLE');
    assert.equal(toInferneoError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })).code, 'UNAVAILABLE');
    assert.equal(toInferneoError(Object.assign(new Error('weird'), { code: 'EWEIRD' })).code, 'INTERNAL');
  });

  it('shares its code table with the Python worker', () => {
    const codes = JSON.parse(python('import json; from inferneo_worker.errors import ErrorCode; print(json.dumps([c.value for c in ErrorCode]))')) as string[];
    assert.ok(codes.length >= 7);
    for (const code of codes) assert.ok(isErrorCode(code), `worker code ${code} is unknown to the orchestrator`);
  });
});
