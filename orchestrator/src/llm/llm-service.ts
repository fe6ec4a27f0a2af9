import type { GenerateRequest, GenerationEvent, TextGenerator } from '../backends/generation.js';
import { ErrorCode, httpStatusOf, InferneoError, NotFoundError, toInferneoError, UnsupportedError } from '../errors.js';
import type { ModelConfig } from '../registry/model-config.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { ROUTE_KEY_HEADER, type Router, type Target } from '../routing/router.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';
import type { LlmMetrics } from './llm-metrics.js';
import { SequenceSlots } from './sequence-slots.js';

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
  resolve(name: string, version: string | undefined, header: HeaderLookup, routeKey?: string): Target {
    const lookup: HeaderLookup = routeKey === undefined ? header : (h) => header(h) ?? (h === ROUTE_KEY_HEADER ? routeKey : undefined);
    let target: Target;
    try {
      target = this.router.resolve(name, version, lookup);
    } catch (err) {
      if (err instanceof InferneoError && err.code === ErrorCode.NOT_FOUND) throw new NotFoundError(`The model '${name}' does not exist${version !== undefined ? ` (version ${version})` : ''}`);
      throw err;
    }
    if (!this.isLlm(target.model)) {
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
