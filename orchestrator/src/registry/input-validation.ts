import { InvalidArgumentError } from '../errors.js';
import type { InferRequest } from '../protocol/infer-request.js';
import { assertTensorSize } from '../protocol/tensor.js';
import type { ModelConfig } from './model-config.js';

/**
 * Checks a request against a model's signature before it is queued, so that a bad request fails
 * alone with a message naming the problem and never reaches (or disturbs) a batch on a worker.
 */
export function validateInferRequest(config: ModelConfig, request: InferRequest): void {
  const model = `model '${config.name}'`;
  const byName = new Map(config.input.map((t) => [t.name, t]));
  let batch: number | undefined;
  for (const tensor of request.inputs) {
    const spec = byName.get(tensor.name);
    if (spec === undefined) {
      throw new InvalidArgumentError(
        `unexpected input '${tensor.name}' for ${model}; its inputs are ${config.input.map((t) => `'${t.name}'`).join(', ')}`,
      );
    }
    const what = `input '${tensor.name}'`;
    if (tensor.datatype !== spec.datatype) {
      throw new InvalidArgumentError(`${what}: datatype ${tensor.datatype} does not match the model's ${spec.datatype}`);
    }
    const expected = config.max_batch_size > 0 ? ['-1', ...spec.dims.map(String)] : spec.dims.map(String);
    const wrongShape = (): InvalidArgumentError =>
      new InvalidArgumentError(
        `${what}: shape [${tensor.shape.join(',')}] does not match the model's [${expected.join(',')}]` +
          (config.max_batch_size > 0 ? ` (the first dimension is the batch size, at most ${config.max_batch_size})` : ''),
      );
    let dims = tensor.shape;
    if (config.max_batch_size > 0) {
      const b = tensor.shape[0];
      if (b === undefined) throw wrongShape();
      if (b < 1 || b > config.max_batch_size) {
        throw new InvalidArgumentError(`${what}: batch size ${b} is outside 1..${config.max_batch_size} (max_batch_size of ${model})`);
      }
      if (batch !== undefined && b !== batch) {
        throw new InvalidArgumentError(`${what}: batch size ${b} differs from the other inputs' ${batch}`);
      }
      batch = b;
      dims = tensor.shape.slice(1);
    }
    if (dims.length !== spec.dims.length || dims.some((d, i) => spec.dims[i] !== -1 && spec.dims[i] !== d)) {
      throw wrongShape();
    }
    assertTensorSize(tensor);
  }
  const given = new Set(request.inputs.map((t) => t.name));
  const missing = config.input.filter((t) => !t.optional && !given.has(t.name));
  if (missing.length > 0) {
    throw new InvalidArgumentError(`${model} needs input ${missing.map((t) => `'${t.name}'`).join(', ')}, missing from the request`);
  }
  const outputs = new Set(config.output.map((t) => t.name));
  for (const o of request.outputs) {
    if (!outputs.has(o.name)) {
      throw new InvalidArgumentError(
        `unknown output '${o.name}' requested from ${model}; its outputs are ${[...outputs].map((n) => `'${n}'`).join(', ')}`,
      );
    }
  }
}
