import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CancelSource, type CancelSignal } from '../scheduling/cancel-signal.js';
import { ErrorCode, httpStatusOf, type InferneoError, InvalidArgumentError, toInferneoError } from '../errors.js';

/**
 * The HTTP listener of the data plane. It is a bare `node:http` server: the `/v2` inference path
 * is the hot path, and measured on this machine kind a bare handler serves ~4x the requests of
 * Express with its JSON middleware (DESIGN.md, performance notes). Handlers are plain functions
 * that return a Reply or throw an InferneoError; this file turns both into responses.
 */

export interface Reply {
  status: number;
  body: Buffer | string;
  headers?: Record<string, string | number>;
  /**
   * The rest of the body, written piece by piece as it is yielded (server-sent events), after
   * `body`; the response ends with it. It should not throw (an error mid-stream belongs inside the
   * stream; one that escapes closes the connection). When the client goes away the server stops
   * pulling and calls the iterator's `return()`.
   */
  stream?: AsyncIterable<string | Buffer>;
}

/** `signal` is cancelled when the client goes away before its response is written. */
export type Handler = (req: IncomingMessage, params: string[], signal: CancelSignal) => Promise<Reply> | Reply;

export function jsonReply(value: unknown, status = 200): Reply {
  return { status, body: JSON.stringify(value), headers: { 'content-type': 'application/json' } };
}

export function emptyReply(status = 200): Reply {
  return { status, body: '' };
}

export function errorReply(err: InferneoError): Reply {
  const reply = jsonReply({ error: err.message }, httpStatusOf(err.code));
  // A full queue is temporary: tell well-behaved clients when to come back.
  if (err.code === ErrorCode.RESOURCE_EXHAUSTED) reply.headers!['retry-after'] = '1';
  // After a refused oversized body the rest of it may still be in flight: close the connection
  // rather than try to read past it.
  if (err.code === ErrorCode.PAYLOAD_TOO_LARGE) reply.headers!['connection'] = 'close';
  return reply;
}

/** Routes a request to a handler; the params are the decoded path segments the route captured. */
export type Router = (method: string, segments: string[]) => { handler: Handler; params: string[] } | InferneoError;

export interface HttpServerOptions {
  host: string;
  port: number;
  router: Router;
  /**
   * Serves every path outside the data plane (the admin API, /metrics, /openapi.json), e.g. an
   * Express app. Without it those paths get 404.
   */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
  /** First path segments that `router` serves; the rest go to `fallback`. @defaultValue ['v2'] */
  dataPlane?: string[];
  /** Called for requests that fail with INTERNAL, so that bugs are logged with their stack. */
  onInternalError?: (err: InferneoError, req: IncomingMessage) => void;
}

/** Resolves when `res` can take more data again, or is closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export class HttpServer {
  private readonly server: http.Server;
  private readonly dataPlane: ReadonlySet<string>;
  private listening = false;

  constructor(private readonly options: HttpServerOptions) {
    this.dataPlane = new Set(options.dataPlane ?? ['v2']);
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => void this.handle(req, res));
    // A stuck or slow client must not hold a socket forever.
    this.server.requestTimeout = 300_000;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listening = true;
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops accepting connections, lets requests in progress finish, then closes idle keep-alive sockets. */
  async close(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const force = setTimeout(() => this.server.closeAllConnections(), 5_000);
    await closed;
    clearTimeout(force);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      let segments: string[];
      try {
        segments = path.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
      } catch {
        throw new InvalidArgumentError(`malformed URL path '${path}'`);
      }
      if (!this.dataPlane.has(segments[0] ?? '') && this.options.fallback !== undefined) {
        this.options.fallback(req, res);
        return;
      }
      const route = this.options.router(req.method ?? 'GET', segments);
      if (!('handler' in route)) throw route;
      const gone = new CancelSource();
      res.once('close', () => {
        if (!res.writableFinished) gone.cancel();
      });
      reply = await route.handler(req, route.params, gone);
    } catch (err) {
      const error = toInferneoError(err);
      if (error.code === ErrorCode.INTERNAL) this.options.onInternalError?.(error, req);
      reply = errorReply(error);
    }
    if (res.destroyed) return;
    if (reply.stream !== undefined) {
      await this.writeStream(req, res, reply, reply.stream);
      return;
    }
    const body = reply.body;
    res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** A chunked response: each piece is sent as soon as it is yielded, respecting backpressure. */
  private async writeStream(req: IncomingMessage, res: ServerResponse, reply: Reply, stream: AsyncIterable<string | Buffer>): Promise<void> {
    res.socket?.setNoDelay(true);
    res.writeHead(reply.status, reply.headers);
    if (Buffer.byteLength(reply.body) > 0) res.write(reply.body);
    try {
      for await (const piece of stream) {
        if (res.destroyed) break;
        if (!res.write(piece)) await drained(res);
      }
    } catch (err) {
      this.options.onInternalError?.(toInferneoError(err), req);
      res.destroy();
      return;
    }
    res.end();
  }
}
