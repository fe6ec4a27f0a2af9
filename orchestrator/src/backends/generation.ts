import type { CancelSignal } from '../scheduling/cancel-signal.js';

/**
 * Text generation by decoupled models (Triton's term: one request, a stream of responses): what
 * the LLM endpoints ask of a backend that can generate. The Python backend implements it over the
 * worker protocol's `generate` / `cancel` messages (docs/worker-protocol.md, "Streaming").
 */

/** How tokens are chosen; absent fields take the model's defaults. */
export interface SamplingParameters {
  /** Tokens to generate at most; absent = the model's `default_max_tokens`, capped by its context. */
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  repetition_penalty?: number;
  /** Text that ends the output (not included in it). */
  stop?: string[];
  seed?: number;
  /** Generate past end-of-sequence tokens (benchmarks). */
  ignore_eos?: boolean;
}

export interface ChatMessage {
  role: string;
  content: string;
}

/** A raw `prompt` (completions) or chat `messages` that the model's chat template renders; exactly one. */
export type GenerateRequest = ({ prompt: string; messages?: undefined } | { messages: ChatMessage[]; prompt?: undefined }) & {
  parameters: SamplingParameters;
};

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** One piece of a generation: new text (`tokens` produced it; the text may be empty), and at the end one `final`. */
export type GenerationEvent =
  | { type: 'delta'; text: string; tokens: number }
  | { type: 'final'; text: string; finishReason: FinishReason; usage: TokenUsage };

/** What a loaded decoupled model reported about itself. */
export interface GenerationInfo {
  /** Tokens of one sequence, prompt and output together. */
  contextLength: number;
  /** Sequences one host runs at once. */
  maxSequences: number;
  defaultMaxTokens: number;
  /** Whether it takes chat messages (it has a chat template). */
  chatTemplate: boolean;
}

/**
 * A backend that generates text. `generate` starts a sequence on a host; iterating the result yields
 * its events, ending after `final` or by throwing the InferneoError that failed it. Cancelling
 * `signal`, or leaving the iteration early (`return()`), stops the sequence on its host.
 */
export interface TextGenerator {
  /** Hosts serving the version and what they reported, or undefined when none serves it. */
  generationInfo(model: string, version: string): { info: GenerationInfo; hosts: number } | undefined;
  generate(model: string, version: string, request: GenerateRequest, signal?: CancelSignal): AsyncIterable<GenerationEvent>;
}
