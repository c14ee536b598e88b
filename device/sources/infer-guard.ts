/**
 * The gateway's HTTP listener (`POST /infer`, `GET /status`) serves local tools only: its
 * answers feed live accuracy and rollout decisions, so a web page must not post readings
 * with truth labels. shared/request-guard.ts refuses any Origin and any non-loopback Host;
 * on top, a POST must say `application/json`, which a page cannot send across origins
 * without a preflight (a form or text/plain body can).
 */
import type { IncomingMessage, Server } from 'node:http';
import { guardServer } from '../../shared/request-guard.ts';

/** Why a POST is refused for its content type, or undefined when it is JSON (or not a POST). */
export function jsonBodyRefusal(request: IncomingMessage): string | undefined {
  if (request.method !== 'POST') return undefined;
  const given = request.headers['content-type'] ?? '';
  const type = given.split(';')[0]?.trim().toLowerCase();
  if (type === 'application/json') return undefined;
  return `POST ${request.url ?? '/'} needs Content-Type: application/json (got '${given || 'none'}')`;
}

export function guardInferServer(server: Server): Server {
  return guardServer(server, { check: jsonBodyRefusal });
}
