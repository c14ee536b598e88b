import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type DashboardServer, shareInflight, startDashboard } from '../../infra/local/dashboard/server.ts';
import { type DashboardSnapshot, emptySnapshot } from '../../infra/local/dashboard/snapshot.ts';
import { buildSnapshot } from './fixtures.ts';

let server: DashboardServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(snapshot: () => Promise<DashboardSnapshot>): Promise<DashboardServer> {
  server = await startDashboard({ snapshot });
  return server;
}

describe('dashboard server', () => {
  it('serves the page, its stylesheet and a client bundle that needs no other host', async () => {
    // Prepare
    const { url } = await start(async () => emptySnapshot());

    // Act
    const get = (path: string) => fetch(new URL(path, url));
    const [page, css, js] = await Promise.all([get(''), get('styles.css'), get('app.js')]);
    const html = await page.text();
    const bundle = await js.text();

    // Assess
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(html).toContain('<script type="module" src="/app.js">');
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(css.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('javascript');
    expect(bundle.length).toBeGreaterThan(50_000); // Chart.js is bundled in, not fetched.
    expect(bundle).not.toMatch(/import\s*["'(]|from\s*["']https?:/);
  });

  it('answers /api/snapshot with the validated snapshot', async () => {
    // Prepare
    const snapshot = buildSnapshot();
    const { url } = await start(async () => snapshot);

    // Act
    const response = await fetch(new URL('/api/snapshot', url));

    // Assess
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual(snapshot);
  });

  it('shares one data read between calls made while it is in flight', async () => {
    // Prepare
    let reads = 0;
    const read = shareInflight(async () => ++reads);

    // Act
    const together = await Promise.all([read(), read(), read()]);
    const later = await read();

    // Assess
    expect(together).toEqual([1, 1, 1]);
    expect(later).toBe(2);
  });

  it('refuses a snapshot that breaks the schema and says which field', async () => {
    // Prepare
    const broken = buildSnapshot();
    const device = broken.rollout.fleet[0];
    if (device) device.outboxDepth = -1;
    const { url } = await start(async () => broken);

    // Act
    const response = await fetch(new URL('/api/snapshot', url));
    const body = (await response.json()) as { error: string };

    // Assess
    expect(response.status).toBe(500);
    expect(body.error).toContain('rollout.fleet.0.outboxDepth');
  });

  it('reports a failing data source as 503 with its reason', async () => {
    // Prepare
    const { url } = await start(async () => {
      throw new Error('dynalite is not running');
    });

    // Act
    const response = await fetch(new URL('/api/snapshot', url));

    // Assess
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toContain('dynalite is not running');
  });

  it('answers unknown paths with 404 and other methods with 405', async () => {
    // Prepare
    const { url } = await start(async () => emptySnapshot());

    // Act
    const missing = await fetch(new URL('/nope', url));
    const post = await fetch(new URL('/api/snapshot', url), { method: 'POST', body: '{}' });

    // Assess
    expect(missing.status).toBe(404);
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('says which port is taken when it cannot listen', async () => {
    // Prepare
    const first = await start(async () => emptySnapshot());
    const port = Number(new URL(first.url).port);

    // Act
    const second = startDashboard({ port, snapshot: async () => emptySnapshot() });

    // Assess
    await expect(second).rejects.toThrow(`127.0.0.1:${port}: the port is in use`);
  });

  it('closes promptly while a client holds a keep-alive connection, and stops listening', async () => {
    // Prepare
    const dashboard = await start(async () => emptySnapshot());
    const target = new URL('/api/snapshot', dashboard.url);
    await new Promise<void>((resolve, reject) => {
      const req = request(target, { headers: { connection: 'keep-alive' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });

    // Act
    await dashboard.close();
    server = undefined;

    // Assess
    await expect(fetch(target)).rejects.toThrow();
  });
});
