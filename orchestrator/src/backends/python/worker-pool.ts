import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import {
  DeadlineExceededError,
  ErrorCode,
  errorFromWire,
  InferneoError,
  UnavailableError,
} from '../../errors.js';
import { decodeMessage, encodeMessage, type HeartbeatMessage, type HelloMessage, PROTOCOL_VERSION } from './wire.js';
import { WorkerSession, WorkerState } from './worker-session.js';

/**
 * The orchestrator's end of the worker protocol: one ZeroMQ ROUTER socket that every Python worker
 * (spawned locally or connecting from another machine) talks to. It knows which workers are alive,
 * correlates requests with replies, and fails every request of a worker it loses, so that no caller
 * waits on a dead process.
 */

export interface WorkerPoolOptions {
  /**
   * ROUTER endpoint to bind, `tcp://host:port` or `ipc:///path`.
   * @defaultValue `ipc://<tmpdir>/inferneo-<pid>-<n>.ipc`, private to this process
   */
  bind?: string;
  /** How often workers send heartbeats (told to them in the hello acknowledgement). @defaultValue 1000 */
  heartbeatIntervalMs?: number;
  /** Silence after which a worker is declared dead. @defaultValue 5000 */
  heartbeatTimeoutMs?: number;
}

export interface WorkerPoolEvents {
  /** A worker said hello (first time, or again after a restart or reconnect). */
  'worker-connected': [session: WorkerSession];
  /** A worker was declared dead; its in-flight requests have already been failed. */
  'worker-lost': [session: WorkerSession, reason: string];
}

interface Pending {
  session: WorkerSession;
  resolve: (reply: Record<string, unknown>) => void;
  reject: (err: InferneoError) => void;
  timer: NodeJS.Timeout | undefined;
  /** A streamed request (`generate`): gets every `result` with `final: false`; each re-arms `timer`. */
  onPartial?: (reply: Record<string, unknown>) => void;
}

/** A request whose answer streams: see WorkerPool.stream. */
export interface StreamCall {
  /** Settles with the final `result`, or the error. */
  done: Promise<Record<string, unknown>>;
  /** Tells the worker to stop (`cancel`) and rejects `done` with CANCELLED at once; no-op once settled. */
  cancel(reason: string): void;
}

let endpointCounter = 0;

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  private readonly requestedBind: string | undefined;
  private socket: zmq.Router | undefined;
  private ipcPath: string | undefined;
  private readonly sessionsById = new Map<string, WorkerSession>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly sendQueue: { frames: [Buffer, Buffer]; onError: (err: Error) => void }[] = [];
  private sending = false;
  private closed = false;
  private receiving: Promise<void> | undefined;

  constructor(options: WorkerPoolOptions = {}) {
    super();
    this.requestedBind = options.bind === '' ? undefined : options.bind;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    if (this.heartbeatTimeoutMs <= this.heartbeatIntervalMs) {
      throw new RangeError(
        `heartbeatTimeoutMs (${this.heartbeatTimeoutMs}) must be larger than heartbeatIntervalMs (${this.heartbeatIntervalMs})`,
      );
    }
  }

  /** The endpoint workers connect to (the bound one, with the real port for `tcp://…:0`). */
  get endpoint(): string {
    if (this.socket === undefined) throw new Error('WorkerPool is not started');
    return this.socket.lastEndpoint ?? '';
  }

  async start(): Promise<void> {
    if (this.socket !== undefined) return;
    let bind = this.requestedBind;
    if (bind === undefined) {
      this.ipcPath = path.join(os.tmpdir(), `inferneo-${process.pid}-${endpointCounter++}.ipc`);
      rmSync(this.ipcPath, { force: true });
      bind = `ipc://${this.ipcPath}`;
    }
    // handover: a restarted worker reuses its id at once; mandatory: sending to a worker that is gone
    // fails instead of being dropped silently, so the request fails fast.
    const socket = new zmq.Router({ handover: true, mandatory: true, linger: 0 });
    try {
      await socket.bind(bind.replace(/:0$/, ':*'));
    } catch (err) {
      socket.close();
      throw new Error(`cannot bind the worker endpoint ${bind}: ${(err as Error).message}`, { cause: err });
    }
    this.socket = socket;
    this.receiving = this.receiveLoop(socket);
  }

  sessions(): WorkerSession[] {
    return [...this.sessionsById.values()];
  }

  session(workerId: string): WorkerSession | undefined {
    return this.sessionsById.get(workerId);
  }

  /**
   * Sends a request to a worker and resolves with its `result` map. Rejects with the worker's error,
   * with UNAVAILABLE when the worker is lost first, or DEADLINE_EXCEEDED after `timeoutMs` (0 = none).
   */
  request(session: WorkerSession, message: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    return this.dispatch(session, message, timeoutMs).done;
  }

  /**
   * Sends a request whose answer streams (`generate`, docs/worker-protocol.md "Streaming"): every
   * `result` with `final: false` goes to `onPartial`, and `done` settles with the final one (or the
   * error, as for `request`). `timeoutMs` is the longest silence allowed between two frames.
   */
  stream(session: WorkerSession, message: Record<string, unknown>, timeoutMs: number, onPartial: (reply: Record<string, unknown>) => void): StreamCall {
    const { id, done } = this.dispatch(session, message, timeoutMs, onPartial);
    return {
      done,
      cancel: (reason) => {
        const p = this.settle(id);
        if (p === undefined) return;
        p.reject(new InferneoError(ErrorCode.CANCELLED, reason));
        this.send(session.id, { type: 'cancel', id });
      },
    };
  }

  private dispatch(
    session: WorkerSession,
    message: Record<string, unknown>,
    timeoutMs: number,
    onPartial?: (reply: Record<string, unknown>) => void,
  ): { id: number; done: Promise<Record<string, unknown>> } {
    const id = this.nextId++;
    if (session.state === WorkerState.LOST || this.closed) {
      return { id, done: Promise.reject(new UnavailableError(`worker ${session.id} is not connected`)) };
    }
    const done = new Promise<Record<string, unknown>>((resolve, reject) => {
      const pending: Pending = { session, resolve, reject, timer: undefined };
      if (onPartial !== undefined) pending.onPartial = onPartial;
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.settle(id)?.reject(
            new DeadlineExceededError(`worker ${session.id} did not answer '${String(message['type'])}' within ${timeoutMs} ms`),
          );
        }, timeoutMs);
      }
      this.pending.set(id, pending);
      session.inflight++;
      this.send(session.id, { ...message, id }, (err) => {
        this.settle(id)?.reject(new UnavailableError(`cannot reach worker ${session.id}: ${err.message}`));
      });
    });
    return { id, done };
  }

  /** Declares a worker dead: fails its in-flight requests and forgets it. Idempotent. */
  markLost(workerId: string, reason: string): void {
    const session = this.sessionsById.get(workerId);
    if (session === undefined || session.state === WorkerState.LOST) return;
    this.sessionsById.delete(workerId);
    session.markLost();
    for (const [id, p] of this.pending) {
      if (p.session === session) {
        this.settle(id)?.reject(new UnavailableError(`worker ${workerId} was lost while running the request: ${reason}`));
      }
    }
    this.emit('worker-lost', session, reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const session of this.sessions()) this.markLost(session.id, 'the orchestrator is shutting down');
    this.socket?.close();
    await this.receiving?.catch(() => undefined);
    if (this.ipcPath !== undefined) rmSync(this.ipcPath, { force: true });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    p.session.inflight--;
    return p;
  }

  /**
   * zeromq.js allows one send in progress per socket, so frames go through a queue drained by one
   * loop. `onError` runs when the frame could not be handed to ZeroMQ (e.g. the worker is gone).
   */
  private send(workerId: string, message: object, onError: (err: Error) => void = () => undefined): void {
    this.sendQueue.push({ frames: [Buffer.from(workerId), encodeMessage(message)], onError });
    if (!this.sending) void this.drainSendQueue();
  }

  private async drainSendQueue(): Promise<void> {
    this.sending = true;
    while (this.sendQueue.length > 0 && this.socket !== undefined && !this.closed) {
      const item = this.sendQueue.shift()!;
      try {
        await this.socket.send(item.frames);
      } catch (err) {
        item.onError(err as Error);
      }
    }
    this.sending = false;
  }

  private async receiveLoop(socket: zmq.Router): Promise<void> {
    try {
      for await (const [identity, frame] of socket) {
        if (identity === undefined || frame === undefined) continue;
        let message: Record<string, unknown>;
        try {
          message = decodeMessage(frame);
        } catch (err) {
          console.error(`[inferneo] dropped an unreadable frame from worker ${identity.toString()}: ${(err as Error).message}`);
          continue;
        }
        this.onMessage(identity.toString(), message);
      }
    } catch (err) {
      if (!this.closed) console.error(`[inferneo] worker socket failed: ${(err as Error).message}`);
    }
  }

  private onMessage(workerId: string, message: Record<string, unknown>): void {
    const session = this.sessionsById.get(workerId);
    session?.touch();
    switch (message['type']) {
      case 'hello':
        this.onHello(workerId, message as unknown as HelloMessage);
        return;
      case 'heartbeat':
        if (session === undefined) {
          this.send(workerId, { type: 'error', code: ErrorCode.UNKNOWN_WORKER, message: 'say hello first' });
        } else {
          session.updateFromHeartbeat(message as unknown as HeartbeatMessage);
          this.send(workerId, { type: 'heartbeat' });
        }
        return;
      case 'result':
      case 'error': {
        const id = message['id'];
        const p = typeof id === 'number' ? this.pending.get(id) : undefined;
        // A reply from a previous incarnation of a worker (same id, restarted) is ignored.
        if (p === undefined || p.session !== session) return;
        if (p.onPartial !== undefined && message['type'] === 'result' && message['final'] === false) {
          p.timer?.refresh();
          p.onPartial(message);
          return;
        }
        this.settle(id as number);
        if (message['type'] === 'result') p.resolve(message);
        else p.reject(errorFromWire(message['code'], message['message']));
        return;
      }
      default:
        console.error(`[inferneo] worker ${workerId} sent an unknown message type ${JSON.stringify(message['type'])}`);
    }
  }

  private onHello(workerId: string, hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      console.error(`[inferneo] worker ${workerId} speaks protocol ${String(hello.protocol)}, expected ${PROTOCOL_VERSION}; ignored`);
      return;
    }
    const known = this.sessionsById.get(workerId);
    if (known !== undefined && known.pid === hello.pid) {
      // The same process saying hello again: it missed our acknowledgements for a while (the
      // protocol has it re-register then). Its requests and models are intact; just acknowledge.
      this.send(workerId, { type: 'hello', protocol: PROTOCOL_VERSION, heartbeat_interval_ms: this.heartbeatIntervalMs });
      return;
    }
    // A hello from another process with a known id means the worker restarted: what it ran is gone.
    if (known !== undefined) this.markLost(workerId, 'it said hello again (restarted or reconnected)');
    const session = new WorkerSession(hello, this.heartbeatTimeoutMs, () =>
      this.markLost(workerId, `no heartbeat for ${this.heartbeatTimeoutMs} ms`),
    );
    this.sessionsById.set(workerId, session);
    this.send(workerId, { type: 'hello', protocol: PROTOCOL_VERSION, heartbeat_interval_ms: this.heartbeatIntervalMs });
    this.emit('worker-connected', session);
  }
}
