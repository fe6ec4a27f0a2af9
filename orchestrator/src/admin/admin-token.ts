import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The admin API is never open: without a configured token, one is generated at start and written
 * (owner-only) to a file, so that the operator finds it there and it stays the same across restarts.
 */

export interface AdminToken {
  token: string;
  /** Where it came from: the configuration, an earlier generated file, or generated now. */
  source: 'config' | 'file' | 'generated';
  /** The file it was read from or written to. */
  file?: string;
}

export async function resolveAdminToken(configured: string, file: string): Promise<AdminToken> {
  if (configured !== '') return { token: configured, source: 'config' };
  const absolute = path.resolve(file);
  const existing = await readFile(absolute, 'utf8').then((t) => t.trim(), () => '');
  if (existing !== '') return { token: existing, source: 'file', file: absolute };
  const token = randomBytes(32).toString('base64url');
  await mkdir(path.dirname(absolute), { recursive: true, mode: 0o700 });
  await writeFile(absolute, token + '\n', { mode: 0o600 });
  return { token, source: 'generated', file: absolute };
}
