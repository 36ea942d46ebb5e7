/** The operations component's public interface: health, readiness, metrics, the API description, public keys. */
export { openApiDocument } from './openapi';
export { opsRouter } from './ops.router';
export { opsRoutes } from './ops.schema';
