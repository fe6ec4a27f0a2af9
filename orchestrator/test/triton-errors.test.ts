import assert from 'node:assert/strict';
import { isEndpointFailure, isRetryable, oneLine, tritonGrpcError, tritonHttpError, tritonTransportError } from '../src/backends/triton/triton-errors.js';
import { ErrorCode, GrpcStatus, InferneoError } from '../src/errors.js';

describe('triton-errors', () => {
  const e = 'http://t:8000';

  it("maps Triton's HTTP statuses to stable codes and keeps Triton's own message", () => {
    const cases: [number, string, ErrorCode, string][] = [
      [400, '{"error":"unexpected shape for input \'X\'"}', ErrorCode.INVALID_ARGUMENT, "Triton http://t:8000: unexpected shape for input 'X'"],
      [404, '{"error":"Request for unknown model: \'m\' is not found"}', ErrorCode.NOT_FOUND, "Triton http://t:8000: Request for unknown model: 'm' is not found"],
      [500, '{"error":"failed to load \'m\', failed to poll\\n from model repository"}', ErrorCode.INTERNAL, "Triton http://t:8000: failed to load 'm', failed to poll from model repository"],
      [503, 'Service Unavailable', ErrorCode.UNAVAILABLE, 'Triton http://t:8000: Service Unavailable'],
      [502, '', ErrorCode.UNAVAILABLE, 'Triton http://t:8000: HTTP 502'],
      [504, '{}', ErrorCode.DEADLINE_EXCEEDED, 'Triton http://t:8000: {}'],
      [418, 'teapot', ErrorCode.INVALID_ARGUMENT, 'Triton http://t:8000: teapot'],
      [599, 'odd', ErrorCode.INTERNAL, 'Triton http://t:8000: odd'],
    ];
    for (const [status, body, code, message] of cases) {
      const err = tritonHttpError(status, Buffer.from(body), e);
      assert.equal(err.code, code, `${status}`);
      assert.equal(err.message, message);
    }
  });

  it("maps Triton's gRPC statuses", () => {
    assert.equal(tritonGrpcError(GrpcStatus.UNAVAILABLE, 'No connection established', '127.0.0.1:8001').code, ErrorCode.UNAVAILABLE);
    assert.equal(tritonGrpcError(GrpcStatus.INVALID_ARGUMENT, 'bad', 'a:1').message, 'Triton a:1: bad');
    assert.equal(tritonGrpcError(GrpcStatus.NOT_FOUND, '', 'a:1').message, 'Triton a:1: gRPC status 5');
    assert.equal(tritonGrpcError(GrpcStatus.INTERNAL, 'x', 'a:1').code, ErrorCode.INTERNAL);
    assert.equal(tritonGrpcError(99, 'x', 'a:1').code, ErrorCode.INTERNAL);
  });

  it('turns transport failures into UNAVAILABLE, and timeouts into DEADLINE_EXCEEDED', () => {
    const refused = tritonTransportError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), e, 100);
    assert.equal(refused.code, ErrorCode.UNAVAILABLE);
    assert.equal(refused.message, 'Triton http://t:8000 cannot be reached: connect ECONNREFUSED 127.0.0.1:9');
    const reset = tritonTransportError(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }), e, 100);
    assert.equal(reset.message, 'Triton http://t:8000 cannot be reached: other side closed (UND_ERR_SOCKET)');
    assert.equal(tritonTransportError('weird', e, 100).message, 'Triton http://t:8000 cannot be reached: weird');
    const slow = tritonTransportError({ code: 'UND_ERR_HEADERS_TIMEOUT', message: 'Headers Timeout Error' }, e, 250);
    assert.equal(slow.code, ErrorCode.DEADLINE_EXCEEDED);
    assert.equal(slow.message, 'Triton http://t:8000 did not answer within 250 ms');
    const mine = new InferneoError(ErrorCode.INTERNAL, 'x');
    assert.equal(tritonTransportError(mine, e, 1), mine);
  });

  it('says which failures count against the circuit and which are retried', () => {
    const of = (code: ErrorCode): InferneoError => new InferneoError(code, 'x');
    assert.ok(isEndpointFailure(of(ErrorCode.UNAVAILABLE)) && isRetryable(of(ErrorCode.UNAVAILABLE)));
    assert.ok(isEndpointFailure(of(ErrorCode.DEADLINE_EXCEEDED)) && !isRetryable(of(ErrorCode.DEADLINE_EXCEEDED)));
    assert.ok(!isEndpointFailure(of(ErrorCode.INVALID_ARGUMENT)) && !isRetryable(of(ErrorCode.NOT_FOUND)));
    assert.equal(oneLine('a\n\nAt:\n  b.py(8): init\n'), 'a At: b.py(8): init');
  });
});
