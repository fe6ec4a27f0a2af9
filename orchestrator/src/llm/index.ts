/**
 * LLM serving: text generation on decoupled models, shared by the OpenAI-compatible API
 * (server/openai-api.ts), Triton's generate extension (server/generate-api.ts) and gRPC
 * ModelStreamInfer on decoupled models (server/grpc-server.ts). Sits between
 * `server/` and `routing/` + `registry/`: it resolves routes and leases versions like inference
 * does, and streams from a backend's TextGenerator (backends/generation.ts).
 */
export { GENERATE_INPUTS, GENERATE_MAX_TOKENS, type ParsedGenerateRequest, parseGenerateRequest } from './generate-request.js';
export { LlmMetrics, type VersionMetrics } from './llm-metrics.js';
export { type HeaderLookup, type LlmEntry, LlmService, type LlmServiceOptions } from './llm-service.js';
export { COMPLETION_MAX_TOKENS, MAX_STOP, type OpenAiRequest, paramOf, parseChatRequest, parseCompletionRequest, parseSampling } from './openai-request.js';
export { SequenceSlots } from './sequence-slots.js';
export { type ForwardedReply, type GeneratePassThrough, TritonGenerate, type TritonGenerateOptions } from './triton-generate.js';
