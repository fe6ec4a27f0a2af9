import type { HeartbeatMessage, HelloMessage } from './wire.js';

/** Lifecycle of a connected worker, as the orchestrator sees it. */
export const WorkerState = {
  /** Said hello; the versions it should host are being loaded on it. */
  CONNECTED: 'connected',
  /** Takes requests for the versions in `loaded`. */
  READY: 'ready',
  /** Declared dead (exited, silent, or replaced by a new hello); never used again. */
  LOST: 'lost',
} as const;
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

export function versionKey(model: string, version: string): string {
  return `${model}\u0000${version}`;
}

/**
 * One worker process, from its hello until it is lost. A new hello creates a new session, so a
 * session's counters and loaded set always describe one incarnation of the process.
 */
export class WorkerSession {
  readonly id: string;
  readonly pid: number;
  /** Inference calls it runs at once. */
  readonly capacity: number;
  readonly memoryBudgetBytes: number;
  private readonly hostable: readonly string[];
  state: WorkerState = WorkerState.CONNECTED;
  /** Requests sent and not yet answered (owned by the WorkerPool). */
  inflight = 0;
  /** Versions loaded on it, by versionKey; a version is routed here only once it is in this set. */
  readonly loaded = new Set<string>();
  /** Memory each loaded version takes on this worker (the larger of its reported and on-disk size). */
  readonly memory = new Map<string, number>();
  /** When each loaded version last received a request (for least-recently-used eviction). */
  readonly lastUsed = new Map<string, number>();
  /** Requests in flight per version on this worker; a version with any is never evicted. */
  readonly inflightByVersion = new Map<string, number>();
  rssBytes = 0;
  lastSeen = Date.now();
  private readonly liveness: NodeJS.Timeout;

  constructor(hello: HelloMessage, heartbeatTimeoutMs: number, onSilent: () => void) {
    this.id = hello.worker_id;
    this.pid = hello.pid;
    this.capacity = Math.max(1, hello.capacity);
    this.memoryBudgetBytes = hello.memory_budget_bytes ?? 0;
    this.hostable = hello.models ?? ['*'];
    // Re-armed by every message; fires only after a full timeout of silence.
    this.liveness = setTimeout(onSilent, heartbeatTimeoutMs);
    this.liveness.unref();
  }

  canHost(model: string): boolean {
    return this.hostable.includes('*') || this.hostable.includes(model);
  }

  touch(): void {
    this.lastSeen = Date.now();
    this.liveness.refresh();
  }

  updateFromHeartbeat(heartbeat: HeartbeatMessage): void {
    this.rssBytes = heartbeat.rss_bytes ?? this.rssBytes;
  }

  /** Memory the loaded versions take, by the estimates in `memory`. */
  memoryInUse(): number {
    let total = 0;
    for (const bytes of this.memory.values()) total += bytes;
    return total;
  }

  /** Forgets a version that is no longer loaded here. */
  forget(key: string): void {
    this.loaded.delete(key);
    this.memory.delete(key);
    this.lastUsed.delete(key);
  }

  markLost(): void {
    this.state = WorkerState.LOST;
    clearTimeout(this.liveness);
    this.loaded.clear();
    this.memory.clear();
  }
}
