import { copyFileSync, cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODEL_REPOSITORY, ROOT } from './stack.js';

/**
 * A Triton model repository for the Triton-backend tests, assembled in a temporary directory from
 * tests/triton/models (configs, the ONNX-Runtime runner, a broken model) and the ONNX files that
 * `npm test` builds into model-repository/, so that Triton serves the very weights the ONNX oracle
 * and the Python workers use:
 *
 * - `tri_mlp/1`: mlp_tiny's MLP (no dynamic batching in Triton);
 * - `tri_classifier/1`, `/2`: classifier v1 and v2; `/3`: a version whose initialize raises;
 * - `tri_broken/1`: a model Triton refuses to load;
 * - `text_stats/1`: the bundled Triton-Python-backend model, unchanged.
 */

const FIXTURES = path.join(ROOT, 'tests', 'triton', 'models');

function runner(dir: string, onnx: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(onnx, path.join(dir, 'model.onnx'));
  copyFileSync(path.join(FIXTURES, 'onnx_runner.py'), path.join(dir, 'model.py'));
}

/** Builds the repository; the caller removes it (`rmSync(dir, { recursive: true, force: true })`). */
export function buildTritonRepository(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-triton-repo-'));
  for (const model of ['tri_mlp', 'tri_classifier', 'tri_broken']) cpSync(path.join(FIXTURES, model), path.join(dir, model), { recursive: true });
  runner(path.join(dir, 'tri_mlp', '1'), path.join(MODEL_REPOSITORY, 'mlp_tiny', '1', 'model.onnx'));
  for (const v of ['1', '2']) runner(path.join(dir, 'tri_classifier', v), path.join(MODEL_REPOSITORY, 'classifier', v, 'model.onnx'));
  mkdirSync(path.join(dir, 'tri_classifier', '3'));
  copyFileSync(path.join(FIXTURES, 'tri_broken', '1', 'model.py'), path.join(dir, 'tri_classifier', '3', 'model.py'));
  cpSync(path.join(MODEL_REPOSITORY, 'text_stats'), path.join(dir, 'text_stats'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__'),
  });
  return dir;
}
