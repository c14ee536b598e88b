/**
 * The gateway's /infer and /status, probed as a web page would reach them: its answers feed
 * live accuracy and rollout decisions, so only local tools may post readings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, startDevice } from '../../device/service.ts';
import { FROM_PAGE, formPost, probe } from '../support/http-probe.ts';
import { type Peers, postInfer, startPeers } from './helpers.ts';

describe('the gateway HTTP listener serves local tools only', () => {
  let peers: Peers;
  let gw: Device;
  let endpoint: string;
  const reading = JSON.stringify({ a: 1.5, b: 1, label: 'lo' });

  beforeAll(async () => {
    peers = await startPeers(10);
    await peers.release({ version: 1 });
    gw = await startDevice(peers.deviceOptions('gw-guarded', { httpPort: 0 }));
    await gw.waitFor((s) => s.version === 1, 20_000);
    endpoint = `http://127.0.0.1:${gw.httpPort}`;
  });

  afterAll(async () => {
    await gw?.stop();
    await peers?.close();
  });

  it('refuses readings from a page (Origin, text/plain, a form, a rebound Host) and counts none of them', async () => {
    // Prepare
    const form = formPost({ a: '1.5', b: '1', label: 'lo' });
    const json = { 'content-type': 'application/json' };
    const port = new URL(endpoint).port;

    // Act
    const answers = [
      await probe(endpoint, {
        method: 'POST',
        path: '/infer',
        headers: { ...json, ...FROM_PAGE },
        body: reading,
      }),
      await probe(endpoint, {
        method: 'POST',
        path: '/infer',
        headers: { 'content-type': 'text/plain' },
        body: reading,
      }),
      await probe(endpoint, {
        method: 'POST',
        path: '/infer',
        headers: { 'content-type': form.contentType },
        body: form.body,
      }),
      await probe(endpoint, { method: 'POST', path: '/infer', body: reading }),
      await probe(endpoint, {
        method: 'POST',
        path: '/infer',
        headers: { ...json, host: `evil.example:${port}` },
        body: reading,
      }),
      await probe(endpoint, {
        method: 'OPTIONS',
        path: '/infer',
        headers: { ...FROM_PAGE, 'access-control-request-method': 'POST' },
      }),
    ];

    // Assess
    expect(answers.map((answer) => answer.status)).toEqual([403, 403, 403, 403, 403, 403]);
    expect(answers[1]?.body).toMatch(/needs Content-Type: application\/json \(got 'text\/plain'\)/);
    expect(answers[4]?.body).toMatch(/Host 'evil.example:\d+' is not a loopback name/);
    expect(gw.status().produced).toBe(0);
  });

  it('answers /status on a loopback Host only, and JSON readings from local tools', async () => {
    // Act
    const rebound = await probe(endpoint, { path: '/status', headers: { host: 'evil.example' } });
    const local = await probe(endpoint, { path: '/status', headers: { host: 'localhost' } });
    const answer = await postInfer(gw.httpPort ?? 0, { a: 1.5, b: 1 });

    // Assess
    expect(rebound.status).toBe(403);
    expect(local.status).toBe(200);
    expect(answer).toMatchObject({ status: 200, body: { version: 1 } });
  });
});
