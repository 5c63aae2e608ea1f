/**
 * The framework's ceiling on this machine: a koa app with one route shaped like the increment
 * route (same path, same router, a small JSON answer) that does no work. The benchmark drives it
 * with the same load generator as the real node, so the node's throughput reads as a fraction of
 * what koa itself can serve here.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import { Router } from '@koa/router';

const app = new Koa();
const router = new Router();
router.post('/api/pages/:page/views', (ctx) => {
  ctx.body = { page: ctx.params.page, count: 1 };
});
app.use(router.routes());

// The same keep-alive timeout as the node's server.
const server = createServer({ keepAliveTimeout: 5000 }, app.callback());
server.listen(Number(process.env.PORT ?? '0'), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
