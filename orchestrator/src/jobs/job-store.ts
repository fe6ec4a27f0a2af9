import type { Redis } from 'ioredis';
import { FINAL_STATES, type JobState } from './job-spec.js';

/**
 * A job's own records in Redis, beside BullMQ's: its metadata and progress counters, its inputs
 * (one value per chunk) and its results (one hash field per row). Results are written with HSETNX
 * and counted in the same Lua call, so a chunk that runs again after a crash or a retry finds its
 * finished rows taken and adds nothing: every row has exactly one result line, and `done + failed`
 * counts each row once. Everything a job owns expires `ttl` after it finishes.
 *
 * Keys (after the installation's prefix): `job:<id>` (hash: settings, counters, timestamps),
 * `job:<id>:results` (hash row → JSON line), `job:<id>:in:<chunk>` (MessagePack rows), and the
 * index `jobs` (sorted set id → creation time).
 */

export interface JobMeta {
  id: string;
  model: string;
  version?: string;
  chunk_size: number;
  /** Chunks of `chunk_size` rows (the last may be shorter); a chunk without valid rows never runs. */
  chunks: number;
  priority: number;
  callback_url?: string;
  total: number;
  done: number;
  failed: number;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  /** The final state, once the job is finalized. */
  state?: JobState;
  /** Set when a cancel was asked for. */
  cancelled: boolean;
  error?: string;
  callback?: string;
}

/** The result of recording: rows newly written, or `gone` when the job no longer exists. */
export type RecordOutcome = { gone: true } | { gone: false; done: number; failed: number };

/** One result line: `ok` = outputs (counted as done), otherwise an error line (counted as failed). */
export interface ResultEntry {
  row: number;
  ok: boolean;
  line: string;
}

const RECORD_RESULTS = `
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local done, failed = 0, 0
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i + 1], ARGV[i + 2]) == 1 then
    if ARGV[i] == '1' then done = done + 1 else failed = failed + 1 end
  end
end
if done > 0 then redis.call('HINCRBY', KEYS[2], 'done', done) end
if failed > 0 then redis.call('HINCRBY', KEYS[2], 'failed', failed) end
return {done, failed}
`;

// Returns 1 when it set started_at, 0 when it was set already, -1 when the job is gone.
const MARK_STARTED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
`;

// Returns 1 when cancelled now, -1 when gone, or 'final:<state>' when the job has finished.
const REQUEST_CANCEL = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local state = redis.call('HGET', KEYS[1], 'state')
if state then return 'final:' .. state end
redis.call('HSET', KEYS[1], 'cancelled', '1')
return 1
`;

// Sets the final state once and starts the expiry clock. Returns 1 when this call finalized the job.
const FINALIZE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
`;

interface JobScripts {
  inferneoJobRecord(results: string, meta: string, ...args: string[]): Promise<number | [number, number]>;
  inferneoJobStarted(meta: string, at: string): Promise<number>;
  inferneoJobCancel(meta: string): Promise<number | string>;
  inferneoJobFinalize(meta: string, results: string, state: string, at: string, ttl: string, error: string): Promise<number>;
}

export interface JobStoreOptions {
  /** Key prefix shared with the registry. @defaultValue 'inferneo:' */
  prefix?: string;
}

export class JobStore {
  private readonly prefix: string;
  private readonly redis: Redis & JobScripts;

  constructor(redis: Redis, options: JobStoreOptions = {}) {
    this.prefix = options.prefix ?? 'inferneo:';
    redis.defineCommand('inferneoJobRecord', { numberOfKeys: 2, lua: RECORD_RESULTS });
    redis.defineCommand('inferneoJobStarted', { numberOfKeys: 1, lua: MARK_STARTED });
    redis.defineCommand('inferneoJobCancel', { numberOfKeys: 1, lua: REQUEST_CANCEL });
    redis.defineCommand('inferneoJobFinalize', { numberOfKeys: 2, lua: FINALIZE });
    this.redis = redis as Redis & JobScripts;
  }

  metaKey(id: string): string {
    return `${this.prefix}job:${id}`;
  }

  resultsKey(id: string): string {
    return `${this.prefix}job:${id}:results`;
  }

  inputKey(id: string, chunk: number): string {
    return `${this.prefix}job:${id}:in:${chunk}`;
  }

  private indexKey(): string {
    return `${this.prefix}jobs`;
  }

  /**
   * Creates a job's record while its input is ingested. Until `activate`, everything it owns
   * expires after `pendingTtlS`, so that a submit cut short (a crash, a bad file) leaves nothing.
   */
  async create(meta: Omit<JobMeta, 'done' | 'failed' | 'cancelled' | 'chunks' | 'total'>, pendingTtlS: number): Promise<void> {
    const fields: Record<string, string> = {
      id: meta.id,
      model: meta.model,
      chunk_size: String(meta.chunk_size),
      priority: String(meta.priority),
      created_at: meta.created_at,
      total: '0',
      done: '0',
      failed: '0',
      chunks: '0',
    };
    if (meta.version !== undefined) fields['version'] = meta.version;
    if (meta.callback_url !== undefined) fields['callback_url'] = meta.callback_url;
    await this.redis.multi().hset(this.metaKey(meta.id), fields).expire(this.metaKey(meta.id), pendingTtlS).exec();
  }

  async setInput(id: string, chunk: number, data: Buffer, pendingTtlS: number): Promise<void> {
    await this.redis.set(this.inputKey(id, chunk), data, 'EX', pendingTtlS);
  }

  async input(id: string, chunk: number): Promise<Buffer | null> {
    return this.redis.getBuffer(this.inputKey(id, chunk));
  }

  async dropInput(id: string, chunk: number): Promise<void> {
    await this.redis.unlink(this.inputKey(id, chunk));
  }

  /** Makes an ingested job permanent (until it finishes) and lists it. */
  async activate(id: string, total: number, chunks: number, createdAtMs: number): Promise<void> {
    const multi = this.redis.multi();
    multi.hset(this.metaKey(id), { total: String(total), chunks: String(chunks) });
    multi.persist(this.metaKey(id));
    multi.persist(this.resultsKey(id));
    for (let c = 0; c < chunks; c++) multi.persist(this.inputKey(id, c));
    multi.zadd(this.indexKey(), createdAtMs, id);
    await multi.exec();
  }

  /** Deletes everything a job owns (a submit that failed). */
  async remove(id: string, chunks: number): Promise<void> {
    const keys = [this.metaKey(id), this.resultsKey(id)];
    for (let c = 0; c < chunks; c++) keys.push(this.inputKey(id, c));
    await this.redis.multi().unlink(...keys).zrem(this.indexKey(), id).exec();
  }

  /** Writes result lines that are not written yet and counts them; see the class comment. */
  async record(id: string, entries: readonly ResultEntry[]): Promise<RecordOutcome> {
    if (entries.length === 0) return { gone: false, done: 0, failed: 0 };
    const args: string[] = [];
    for (const e of entries) args.push(e.ok ? '1' : '0', String(e.row), e.line);
    const reply = await this.redis.inferneoJobRecord(this.resultsKey(id), this.metaKey(id), ...args);
    if (reply === -1 || !Array.isArray(reply)) return { gone: true };
    return { gone: false, done: reply[0], failed: reply[1] };
  }

  /** Rows among `rows` that have a result already. */
  async finishedRows(id: string, rows: readonly number[]): Promise<Set<number>> {
    const out = new Set<number>();
    if (rows.length === 0) return out;
    const values = await this.redis.hmget(this.resultsKey(id), ...rows.map(String));
    values.forEach((v, i) => {
      if (v !== null) out.add(rows[i]!);
    });
    return out;
  }

  /** Records when the first chunk started. False when the job is gone. */
  async markStarted(id: string): Promise<boolean> {
    return (await this.redis.inferneoJobStarted(this.metaKey(id), new Date().toISOString())) !== -1;
  }

  /** Cancelled now (`ok`), `gone`, or `final` with the state that makes it too late. */
  async requestCancel(id: string): Promise<{ outcome: 'ok' | 'gone' } | { outcome: 'final'; state: JobState }> {
    const reply = await this.redis.inferneoJobCancel(this.metaKey(id));
    if (reply === 1) return { outcome: 'ok' };
    if (reply === -1) return { outcome: 'gone' };
    return { outcome: 'final', state: String(reply).slice('final:'.length) as JobState };
  }

  /**
   * Gives a job its final state once (later calls change nothing) and starts its expiry; inputs
   * left over (chunks dropped by a cancel) are deleted. True when this call finalized it.
   */
  async finalize(id: string, state: JobState, ttlS: number, error = ''): Promise<boolean> {
    if (!FINAL_STATES.has(state)) throw new Error(`finalize: ${state} is not a final state`);
    const reply = await this.redis.inferneoJobFinalize(this.metaKey(id), this.resultsKey(id), state, new Date().toISOString(), String(ttlS), error);
    if (reply === 1) {
      const chunks = Number(await this.redis.hget(this.metaKey(id), 'chunks'));
      for (let c = 0; c < chunks; c += 1000) {
        const keys: string[] = [];
        for (let k = c; k < Math.min(chunks, c + 1000); k++) keys.push(this.inputKey(id, k));
        await this.redis.unlink(...keys);
      }
    }
    return reply === 1;
  }

  /** Claims the right to send the completion callback: true for exactly one caller. */
  async claimCallback(id: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.metaKey(id), 'callback', 'sending')) === 1;
  }

  async setCallbackOutcome(id: string, outcome: string): Promise<void> {
    // Only while the job exists: HSET would otherwise create a record without expiry.
    if ((await this.redis.exists(this.metaKey(id))) === 1) await this.redis.hset(this.metaKey(id), 'callback', outcome);
  }

  async meta(id: string): Promise<JobMeta | undefined> {
    return parseMeta(await this.redis.hgetall(this.metaKey(id)));
  }

  /** The newest `limit` jobs, newest first; entries whose job expired are dropped from the index. */
  async list(limit: number): Promise<JobMeta[]> {
    const ids = await this.redis.zrevrange(this.indexKey(), 0, limit - 1);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.metaKey(id));
    const replies = (await pipeline.exec()) ?? [];
    const out: JobMeta[] = [];
    const gone: string[] = [];
    replies.forEach(([err, value], i) => {
      const meta = err === null ? parseMeta(value as Record<string, string>) : undefined;
      if (meta !== undefined) out.push(meta);
      else if (err === null) gone.push(ids[i]!);
    });
    if (gone.length > 0) await this.redis.zrem(this.indexKey(), ...gone);
    return out;
  }

  /** Result lines of rows [from, to), in row order; rows without a result are skipped. */
  async results(id: string, from: number, to: number): Promise<string[]> {
    if (to <= from) return [];
    const fields: string[] = [];
    for (let r = from; r < to; r++) fields.push(String(r));
    const values = await this.redis.hmget(this.resultsKey(id), ...fields);
    return values.filter((v): v is string => v !== null);
  }
}

function parseMeta(hash: Record<string, string>): JobMeta | undefined {
  if (hash['id'] === undefined || hash['model'] === undefined) return undefined;
  const meta: JobMeta = {
    id: hash['id'],
    model: hash['model'],
    chunk_size: Number(hash['chunk_size']),
    chunks: Number(hash['chunks'] ?? 0),
    priority: Number(hash['priority']),
    total: Number(hash['total'] ?? 0),
    done: Number(hash['done'] ?? 0),
    failed: Number(hash['failed'] ?? 0),
    created_at: hash['created_at'] ?? '',
    cancelled: hash['cancelled'] === '1',
  };
  for (const k of ['version', 'callback_url', 'started_at', 'finished_at', 'error', 'callback'] as const) {
    if (hash[k] !== undefined) meta[k] = hash[k];
  }
  if (hash['state'] !== undefined) meta.state = hash['state'] as JobState;
  return meta;
}
