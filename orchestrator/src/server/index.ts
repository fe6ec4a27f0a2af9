export { HttpServer, type HttpServerOptions, type Reply, type Router } from './http-server.js';
export { createV2Router, EXTENSIONS, SERVER_NAME, SERVER_VERSION, type V2ApiOptions } from './v2-api.js';
