import { createHmac, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express, { type NextFunction, type Request, type Response } from 'express';
import { tokenChecker } from './auth.js';

/**
 * bull-board, BullMQ's dashboard, at `/admin/queues`, behind the admin token. Scripts send the
 * bearer token as everywhere under /admin; a browser, which cannot add that header to the page's
 * own asset and API requests, opens `/admin/queues?token=<token>` once and gets a session cookie
 * (HttpOnly, SameSite=Strict, scoped to the dashboard) derived from the token — never the token
 * itself — and is redirected to the clean URL.
 */

export const DASHBOARD_PATH = '/admin/queues';
const COOKIE = 'inferneo_dashboard';

function sessionOf(token: string): string {
  return createHmac('sha256', token).update('inferneo bull-board session').digest('hex');
}

function cookieValue(req: Request): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return value.join('=');
  }
  return undefined;
}

export function createQueuesDashboard(queues: readonly Queue[], token: string): express.Router {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter: adapter, options: { uiConfig: { boardTitle: 'Inferneo jobs' } } });

  const matches = tokenChecker(token);
  const session = Buffer.from(sessionOf(token));
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    const queryToken = typeof req.query['token'] === 'string' ? req.query['token'] : undefined;
    const cookie = cookieValue(req);
    if (bearer !== undefined && matches(bearer)) {
      next();
      return;
    }
    if (queryToken !== undefined && matches(queryToken)) {
      res.setHeader('Set-Cookie', `${COOKIE}=${session.toString()}; Path=${DASHBOARD_PATH}; HttpOnly; SameSite=Strict`);
      res.redirect(303, `${req.baseUrl}${req.path === '/' ? '' : req.path}`);
      return;
    }
    if (cookie !== undefined && cookie.length === session.length && timingSafeEqual(Buffer.from(cookie), session)) {
      next();
      return;
    }
    const given = bearer !== undefined || queryToken !== undefined || cookie !== undefined;
    if (!given) res.setHeader('WWW-Authenticate', 'Bearer realm="inferneo-admin"');
    res.status(given ? 403 : 401).json({
      error: given
        ? 'the token is not the admin token'
        : `missing bearer token: send "Authorization: Bearer <token>", or open ${DASHBOARD_PATH}?token=<token> in a browser`,
      code: given ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED',
    });
  });
  router.use(adapter.getRouter() as express.Router);
  return router;
}
