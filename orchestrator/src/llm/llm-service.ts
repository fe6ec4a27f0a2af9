import type { GenerateRequest, GenerationEvent, TextGenerator } from '../backends/generation.js';
import { ErrorCode, httpStatusOf, InferneoError, NotFoundError, toInferneoError, UnsupportedError } from '../errors.js';
import type { ModelConfig } from '../registry/model-config.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { ROUTE_KEY_HEADER, type Router, type Target } from '../routing/router.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';
import type { LlmMetrics } from './llm-metrics.js';
import { SequenceSlots } from './sequence-slots.js';
import type { ForwardedReply, GeneratePassThrough } from './triton-generate.js';

/**
 * Text generation, independent of its API (OpenAI's `/v1`, Triton's generate extension): an LLM is a
 * model of the registry like any other — a decoupled model (`model_transaction_policy { decoupled:
 * true }`) — so routes, A/B splits, sticky keys, header rules, leases (hot-swap drains it) and
 * per-arm statistics apply to it as to tensor models. On top, this service admits at most as many
 * sequences per version as its workers can step together (`SequenceSlots`), and measures time to
 * first token, time per output token and tokens generated (`LlmMetrics`).
 */

export interface LlmServiceOptions {
  registry: ModelRegistry;
  router: Router;
  metrics: LlmMetrics;
  /** Who generates, by the backend kind of a version's registry record (`python`, `triton`). */
  generators: Readonly<Record<string, TextGenerator | undefined>>;
  /**
   * Backends whose own generate endpoints take generate requests as they are, by kind (`triton`):
   * Triton's generate extension is forwarded there instead of being served here. @defaultValue {}
   */
  passThrough?: Readonly<Record<string, GeneratePassThrough | undefined>>;
  /** Requests allowed to wait for a sequence slot per version; more get 429. @defaultValue 1024 */
  maxWaiting?: number;
}

/** A model or route that generates text, for `GET /v1/models`. */
export interface LlmEntry {
  id: string;
  kind: 'model' | 'route';
  created: number;
}

/** Looks up a request header (HTTP) by its lower-case name. */
export type HeaderLookup = (name: string) => string | undefined;

function decoupled(config: ModelConfig): boolean {
  const policy = config.json['model_transaction_policy'];
  const first: unknown = Array.isArray(policy) ? policy[0] : policy;
  return typeof first === 'object' && first !== null && (first as Record<string, unknown>)['decoupled'] === true;
}

export class LlmService {
  private readonly registry: ModelRegistry;
  private readonly router: Router;
  private readonly metrics: LlmMetrics;
  private readonly slots = new Map<string, SequenceSlots>();
  private readonly maxWaiting: number;

  constructor(private readonly options: LlmServiceOptions) {
    this.registry = options.registry;
    this.router = options.router;
    this.metrics = options.metrics;
    this.maxWaiting = options.maxWaiting ?? 1024;
  }

  /** Whether a registered model generates text. */
  isLlm(model: string): boolean {
    try {
      return decoupled(this.registry.model(model).config);
    } catch {
      return false;
    }
  }

  /** Models that generate text, and routes all of whose arms do. */
  list(): LlmEntry[] {
    const out: LlmEntry[] = [];
    for (const m of this.registry.models()) {
      if (decoupled(m.config)) out.push({ id: m.name, kind: 'model', created: Math.floor(Date.parse(m.created_at) / 1000) || 0 });
    }
    for (const r of this.router.routes()) {
      if (r.arms.length > 0 && r.arms.every((a) => this.isLlm(a.model))) {
        out.push({ id: r.name, kind: 'route', created: Math.floor(Date.parse(r.updated_at) / 1000) || 0 });
      }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * The model version a request to `name` goes to, as for inference: a route's split (with
   * `routeKey`, e.g. OpenAI's `user`, as its sticky key when the request has no
   * `x-inferneo-route-key` header), or the model's serving version. NOT_FOUND for what does not
   * exist, UNSUPPORTED (400) for a model that does not generate text.
   */
  resolve(name: string, version: string | undefined, header: HeaderLookup, routeKey?: string, options: { passThrough?: boolean } = {}): Target {
    const lookup: HeaderLookup = routeKey === undefined ? header : (h) => header(h) ?? (h === ROUTE_KEY_HEADER ? routeKey : undefined);
    let target: Target;
    try {
      target = this.router.resolve(name, version, lookup);
    } catch (err) {
      if (err instanceof InferneoError && err.code === ErrorCode.NOT_FOUND) throw new NotFoundError(`The model '${name}' does not exist${version !== undefined ? ` (version ${version})` : ''}`);
      throw err;
    }
    // Triton's generate extension drives non-decoupled models too: what Triton accepts, it decides.
    if (!this.isLlm(target.model) && !(options.passThrough === true && this.passesThrough(target))) {
      throw new UnsupportedError(`model '${target.model}' does not generate text: it is not a decoupled model; use /v2/models/${target.model}/infer`);
    }
    return target;
  }

  /**
   * Generates on `target`: waits for the version (lazy load) and a sequence slot, then yields the
   * host's events. Failures before the first event (bad prompt, full queue, model not ready) are
   * thrown by the first `next()`, so an API can still answer them with a status; cancelling
   * `signal` or leaving the iteration stops the sequence within one token step.
   */
  async *generate(target: Target, request: GenerateRequest, signal?: CancelSignal): AsyncGenerator<GenerationEvent> {
    const started = performance.now();
    const { model, version } = target;
    const m = this.metrics.version(model, version);
    let failure: InferneoError | undefined;
    let release: (() => void) | undefined;
    let lease: { release(): void } | undefined;
    try {
      const generator = this.generatorOf(model, version);
      lease = await this.registry.acquire(model, version);
      release = await this.slotsOf(model, version, generator).acquire(signal);
      m.running.inc();
      let last: number | undefined;
      for await (const event of generator.generate(model, version, request, signal)) {
        if (event.type === 'delta' && event.tokens > 0) {
          const now = performance.now();
          if (last === undefined) m.ttft.observe((now - started) / 1000);
          else m.tpot.observe((now - last) / 1000 / event.tokens);
          last = now;
          m.generationTokens.inc(event.tokens);
        } else if (event.type === 'final') {
          m.promptTokens.inc(event.usage.prompt_tokens);
          m.finished(event.finishReason);
          m.e2e.observe((performance.now() - started) / 1000);
        }
        yield event;
      }
    } catch (err) {
      failure = toInferneoError(err);
      m.failed(failure.code);
      throw failure;
    } finally {
      if (release !== undefined) {
        m.running.dec();
        release();
      }
      lease?.release();
      if (target.route !== undefined && target.arm !== undefined) {
        // As for inference: an arm is charged with server-side failures only.
        if (failure === undefined || (failure.code !== ErrorCode.CANCELLED && httpStatusOf(failure.code) >= 500)) {
          this.router.stats.record(target.route, target.arm, model, version, failure === undefined, (performance.now() - started) / 1000);
        }
      }
    }
  }

  /** Whether generate requests for this version go as they are to its backend's own endpoint. */
  passesThrough(target: Target): boolean {
    return this.options.passThrough?.[this.registry.version(target.model, target.version).backend] !== undefined;
  }

  /**
   * Sends a generate request unchanged to the backend's own endpoint (Triton's generate extension),
   * under a lease on the version and with the route's per-arm statistics; the answer comes back as
   * it is. Time to first token is the time to Triton's first bytes.
   */
  async forward(target: Target, stream: boolean, body: Buffer, signal?: CancelSignal): Promise<ForwardedReply> {
    const started = performance.now();
    const { model, version } = target;
    const passThrough = this.options.passThrough?.[this.registry.version(model, version).backend];
    if (passThrough === undefined) throw new UnsupportedError(`model '${model}' version ${version} is not served by a backend with generate endpoints of its own`);
    const m = this.metrics.version(model, version);
    const lease = await this.registry.acquire(model, version);
    const finish = (ok: boolean): void => {
      m.running.dec();
      lease.release();
      if (target.route !== undefined && target.arm !== undefined) this.router.stats.record(target.route, target.arm, model, version, ok, (performance.now() - started) / 1000);
    };
    m.running.inc();
    let reply: ForwardedReply;
    try {
      reply = await passThrough.forward(model, version, stream, body, signal);
    } catch (err) {
      const failure = toInferneoError(err);
      m.failed(failure.code);
      finish(httpStatusOf(failure.code) < 500 || failure.code === ErrorCode.CANCELLED);
      throw failure;
    }
    if (reply.status !== 200) m.failed(`HTTP_${reply.status}`);
    const source = reply.body;
    const relayed = async function* (): AsyncGenerator<Buffer> {
      let first = true;
      let ok = reply.status < 500;
      try {
        for await (const chunk of source) {
          if (first && reply.status === 200) m.ttft.observe((performance.now() - started) / 1000);
          first = false;
          yield chunk;
        }
        if (reply.status === 200) m.e2e.observe((performance.now() - started) / 1000);
      } catch (err) {
        ok = false;
        throw err;
      } finally {
        finish(ok);
      }
    };
    return { ...reply, body: relayed() };
  }

  private generatorOf(model: string, version: string): TextGenerator {
    const kind = this.registry.version(model, version).backend;
    const generator = this.options.generators[kind];
    if (generator === undefined) {
      throw new UnsupportedError(
        `model '${model}' version ${version} is served by the ${kind} backend, which cannot stream generated text through Inferneo yet`,
      );
    }
    return generator;
  }

  private slotsOf(model: string, version: string, generator: TextGenerator): SequenceSlots {
    const key = `${model}\u0000${version}`;
    let slots = this.slots.get(key);
    if (slots === undefined) {
      const m = this.metrics.version(model, version);
      slots = new SequenceSlots(
        () => {
          const served = generator.generationInfo(model, version);
          return served === undefined ? 1 : served.info.maxSequences * served.hosts;
        },
        this.maxWaiting,
        { onWaiting: (delta) => (delta > 0 ? m.waiting.inc() : m.waiting.dec()) },
      );
      this.slots.set(key, slots);
    }
    return slots;
  }
}
