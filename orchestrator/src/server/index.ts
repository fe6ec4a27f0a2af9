export { GrpcServer, type GrpcServerOptions } from './grpc-server.js';
export { HttpServer, type HttpServerOptions, type Reply, type Router } from './http-server.js';
export { EXTENSIONS, InferenceService, type InferenceServiceOptions, SERVER_NAME, SERVER_VERSION } from './inference-service.js';
export { createV2Router, type V2ApiOptions } from './v2-api.js';
