import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { InputSpool } from '../src/jobs/input-spool.js';

describe('input-spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-spool-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const collect = async (spool: InputSpool, file: string): Promise<[number, string][]> => {
    const out: [number, string][] = [];
    for await (const l of spool.lines(file)) out.push([l.line, l.text]);
    return out;
  };

  it('streams an upload to a file and reads it back line by line, skipping blank lines', async () => {
    const spool = new InputSpool({ dir: path.join(dir, 'spool'), maxBytes: 1024 });
    const { file, bytes } = await spool.write(Readable.from([Buffer.from('{"a":1}\r\n\n'), Buffer.from('{"b":2}\n   \n{"c"'), Buffer.from(':3}')]));
    assert.equal(bytes, 29);
    assert.deepEqual(await collect(spool, file), [[1, '{"a":1}'], [3, '{"b":2}'], [5, '{"c":3}']]);
    await spool.remove(file);
    assert.equal(existsSync(file), false);
  });

  it('stops an upload over the limit with PAYLOAD_TOO_LARGE and deletes the partial file', async () => {
    const spool = new InputSpool({ dir, maxBytes: 10 });
    await assert.rejects(spool.write(Readable.from([Buffer.alloc(8), Buffer.alloc(8)]), 'the file'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
      assert.match(err.message, /the file is larger than the limit of 10 bytes \(jobs\.max_upload_bytes\)/);
      return true;
    });
    assert.deepEqual(readdirSync(dir), []);
  });

  it('writes inline rows as JSON Lines', async () => {
    const spool = new InputSpool({ dir, maxBytes: 10 });
    const { file, bytes } = await spool.writeRows([{ inputs: [] }, { x: 'é' }]);
    assert.equal(readFileSync(file, 'utf8'), '{"inputs":[]}\n{"x":"é"}\n');
    assert.equal(bytes, Buffer.byteLength(readFileSync(file)));
  });
});
