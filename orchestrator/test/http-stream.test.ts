import assert from 'node:assert/strict';
import http from 'node:http';
import { HttpServer } from '../src/server/http-server.js';

/** HttpServer's streamed replies: pieces as they come, backpressure, a stream that fails. */
describe('http-server streaming', () => {
  let server: HttpServer;
  let port: number;
  const internal: string[] = [];

  before(async () => {
    server = new HttpServer({
      host: '127.0.0.1',
      port: 0,
      dataPlane: ['s'],
      onInternalError: (err) => internal.push(err.message),
      router: (_method, segments) => ({
        params: [],
        handler: () => {
          if (segments[1] === 'big') {
            // 64 pieces of 1 MiB: more than the socket buffers, so the server waits for 'drain'.
            const piece = Buffer.alloc(1 << 20, 120);
            return { status: 200, body: 'head:', stream: (async function* () {
              for (let i = 0; i < 64; i++) yield piece;
            })() };
          }
          return { status: 200, body: '', stream: (async function* () {
            yield 'one;';
            throw new Error('broken stream');
          })() };
        },
      }),
    });
    port = await server.listen();
  });
  after(async () => {
    await server.close();
  });

  it('writes a large stream through, waiting for the client to read', async () => {
    const size = await new Promise<number>((resolve, reject) => {
      http.get(`http://127.0.0.1:${port}/s/big`, (res) => {
        let total = 0;
        res.pause();
        setTimeout(() => res.resume(), 100); // a slow reader: the socket fills up first
        res.on('data', (c: Buffer) => (total += c.length));
        res.on('end', () => resolve(total));
        res.on('error', reject);
      });
    });
    assert.equal(size, 5 + 64 * (1 << 20));
  });

  it('closes the connection when a stream fails midway, and reports it', async () => {
    const outcome = await new Promise<string>((resolve) => {
      let text = '';
      const req = http.get(`http://127.0.0.1:${port}/s/fail`, (res) => {
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(`ended: ${text}`));
        res.on('error', () => resolve(`aborted: ${text}`));
      });
      req.on('error', () => resolve(`aborted: ${text}`));
    });
    assert.match(outcome, /^aborted: /); // never a clean end: the client knows the body is cut
    assert.deepEqual(internal, ['internal error: broken stream']);
  });
});
