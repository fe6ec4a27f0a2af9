import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { type ModelConfig, parseModelConfig } from './model-config.js';

/**
 * Reads a model repository in Triton's layout: `<repo>/<model>/config.pbtxt` and one numeric
 * directory per version. A model whose config cannot be read is reported with its reason instead of
 * failing the whole scan, as Triton keeps serving the healthy models of a repository.
 */

export interface RepositoryModel {
  name: string;
  dir: string;
  config?: ModelConfig;
  /** Every version directory found, sorted by number. */
  versions: string[];
  /** The versions the model's version_policy says to serve. */
  servedVersions: string[];
  /** Why the model cannot be used, when it cannot. */
  error?: string;
}

const VERSION_DIR = /^[0-9]+$/;

/** The versions a Triton version policy selects from those present. */
export function servedVersions(config: ModelConfig, versions: readonly string[]): string[] {
  const policy = config.version_policy;
  if ('all' in policy) return [...versions];
  if ('specific' in policy) {
    const wanted = new Set(policy.specific.versions.map(String));
    return versions.filter((v) => wanted.has(v));
  }
  return versions.slice(-Math.max(0, policy.latest.num_versions));
}

export async function readRepositoryModel(repository: string, name: string): Promise<RepositoryModel> {
  const dir = path.join(repository, name);
  const entries = await readdir(dir, { withFileTypes: true });
  const versions = entries
    .filter((e) => e.isDirectory() && VERSION_DIR.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number(a) - Number(b));
  const model: RepositoryModel = { name, dir, versions, servedVersions: [] };
  let text: string;
  try {
    text = await readFile(path.join(dir, 'config.pbtxt'), 'utf8');
  } catch {
    model.error = `model '${name}' has no config.pbtxt in ${dir}`;
    return model;
  }
  try {
    model.config = parseModelConfig(text, name);
  } catch (err) {
    model.error = (err as Error).message;
    return model;
  }
  model.servedVersions = servedVersions(model.config, versions);
  if (model.servedVersions.length === 0) {
    model.error = `model '${name}' has no version directory that its version_policy serves`;
  }
  return model;
}

/** Every model directory of the repository (directories whose name does not start with a dot). */
export async function scanRepository(repository: string): Promise<RepositoryModel[]> {
  const info = await stat(repository).catch(() => undefined);
  if (!info?.isDirectory()) throw new Error(`model repository ${repository} is not a directory`);
  const entries = await readdir(repository, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  return Promise.all(names.map((name) => readRepositoryModel(repository, name)));
}
