import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { PermissionDeniedError, UnauthenticatedError } from '../errors.js';

/**
 * `Authorization: Bearer <token>` on every admin call: none → 401, a wrong one → 403. Tokens are
 * compared as SHA-256 digests with timingSafeEqual, so neither their content nor their length
 * leaks through timing.
 */
export function bearerAuth(token: string): (req: Request, res: Response, next: NextFunction) => void {
  const matches = tokenChecker(token);
  return (req, res, next) => {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="inferneo-admin"');
      next(new UnauthenticatedError('missing bearer token: send "Authorization: Bearer <token>" (the INFERNEO_ADMIN_TOKEN)'));
      return;
    }
    if (!matches(match[1]!)) {
      next(new PermissionDeniedError('the bearer token is not the admin token'));
      return;
    }
    next();
  };
}

/** Compares a presented token with the admin token in constant time (see bearerAuth). */
export function tokenChecker(token: string): (given: string) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (given) => timingSafeEqual(createHash('sha256').update(given).digest(), expected);
}
