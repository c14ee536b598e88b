/**
 * A real browser against a running local stack: a page from another origin tries what a
 * malicious site open on a developer's laptop would (a form upload to the datasets bucket, a
 * retained release notice through the Publish shim, reading the registry and the dashboard),
 * and a DNS-rebound name (chromium's host resolver maps evil.example to 127.0.0.1) tries to
 * read the dashboard same-origin. Nothing is stored, no run starts, nothing is read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetRetainedMessageCommand } from '@aws-sdk/client-iot-data-plane';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordTrainEvents, startTestStack } from '../../bench/support/local-stack.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { iotDataClient, s3Client } from '../../shared/aws.ts';
import { buckets, topicFor } from '../../shared/topology.ts';
import { CHROMIUM_PATH, chromiumMissingReason } from '../dashboard/browser.ts';
import { outcome } from '../support/http-probe.ts';
import { peerAvailable } from '../support/peers.ts';

const missing = peerAvailable('browser probe', chromiumMissingReason(), 'apt-get install chromium')
  ? undefined
  : 'no chromium';

const KEY = 'datasets/browser/from-a-page.csv';
const TOPIC = topicFor('release', { model: 'browser' });

/** The attacker's page: every attempt records how it ended in window.results. */
function attackPage(endpoints: LocalStack['endpoints']): string {
  const s3 = `${endpoints.s3}${buckets.datasets.localName}`;
  const shim = `${endpoints.iotData}topics/${encodeURIComponent(TOPIC)}?qos=1&retain=true`;
  return `<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="upload" method="POST" action="${s3}" enctype="multipart/form-data" target="sink">
  <input name="key" value="${KEY}"><textarea name="file">a,b,label
1,2,x</textarea>
</form>
<script>
window.results = {};
const attempt = async (name, run) => {
  try { window.results[name] = await run(); } catch (error) { window.results[name] = 'failed: ' + error.message; }
};
document.getElementById('upload').submit();
(async () => {
  await attempt('notice', async () => (await fetch(${JSON.stringify(shim)}, { method: 'POST', mode: 'no-cors', body: '{"model":"browser","version":1}' })).type);
  await attempt('registry', async () => (await (await fetch(${JSON.stringify(endpoints.dynamodb)}, { method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.Scan' }, body: '{"TableName":"edgeloop-registry"}' })).text()));
  await attempt('dashboard', async () => (await (await fetch(${JSON.stringify(`${endpoints.dashboard}api/snapshot`)})).text()));
  window.done = true;
})();
</script></body></html>`;
}

describe.runIf(!missing)('a web page in chromium against the local stack', () => {
  let stack: LocalStack;
  let page: Server;
  let browser: Browser;
  const train = recordTrainEvents();

  beforeAll(async () => {
    stack = await startTestStack({ handlers: train.handlers, dashboard: true });
    page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(attackPage(stack.endpoints));
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP evil.example 127.0.0.1'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (page ? page.close(() => resolve()) : resolve()));
    await stack?.stop();
  });

  it('a page from another origin stores nothing, starts no run, publishes nothing and reads nothing', async () => {
    // Prepare
    const tab = await browser.newPage();
    const { port } = page.address() as AddressInfo;

    // Act
    await tab.goto(`http://evil.example:${port}/`);
    await tab.waitForFunction(() => (window as unknown as { done?: boolean }).done === true, undefined, {
      timeout: 20_000,
    });
    const results = (await tab.evaluate(() => (window as unknown as { results: object }).results)) as Record<
      string,
      string
    >;
    // The form's answer, as far as the browser shows it to the page's frame.
    const formAnswer = await tab.frame({ name: 'sink' })?.content();
    await tab.close();
    await stack.idle();
    const object = await outcome(
      s3Client().send(new HeadObjectCommand({ Bucket: buckets.datasets.localName, Key: KEY })),
      'stored',
    );
    const notice = await outcome(
      iotDataClient().send(new GetRetainedMessageCommand({ topic: TOPIC })),
      'retained',
    );

    // Assess
    expect(object).toBe('NotFound');
    expect(train.records).toEqual([]);
    expect(notice).toBe('ResourceNotFoundException');
    expect(results.registry).toMatch(/^failed: /);
    expect(results.dashboard).toMatch(/^failed: /);
    expect(formAnswer ?? '').not.toMatch(/<PostResponse>|<Key>/);
  });

  it('a DNS-rebound name cannot read the dashboard, even same-origin', async () => {
    // Prepare
    const tab = await browser.newPage();
    const dashboard = new URL(stack.endpoints.dashboard ?? '');

    // Act
    const answer = await tab.goto(`http://evil.example:${dashboard.port}/api/snapshot`);
    const body = await answer?.text();
    const own = await tab.goto(`${stack.endpoints.dashboard}api/snapshot`);
    await tab.close();

    // Assess
    expect(answer?.status()).toBe(403);
    expect(body).toMatch(/Host 'evil.example:\d+' is not a loopback name/);
    expect(own?.status()).toBe(200);
  });
});
