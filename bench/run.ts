/**
 * `npm run bench`: runs every benchmark under bench/ in turn. Each prints its figure next to
 * a bare baseline measured in the same run, as a ratio, because these machines are shared and
 * absolute timings wander. Pass names to run a subset: `npm run bench -- train device`.
 */
const benches: Record<string, () => Promise<{ main(): Promise<unknown> }>> = {
  train: () => import('./train.ts'),
  'train-scale': () => import('./train-scale.ts'),
  'train-windows': () => import('./train-windows.ts'),
  device: () => import('./device.ts'),
  'device-windows': () => import('./device-windows.ts'),
  footprint: () => import('./footprint.ts'),
  aggregate: () => import('./aggregate.ts'),
  rollout: () => import('./rollout.ts'),
  fleet: () => import('./fleet-scale.ts'),
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const wanted = process.argv.slice(2);
// The names above are for this runner; each bench reads its own flags from argv when run alone
// (npx tsx bench/NAME.ts ...), so here they run with their defaults.
process.argv.length = 2;
for (const [name, load] of Object.entries(benches)) {
  if (wanted.length && !wanted.includes(name)) continue;
  console.log(`\n== bench: ${name}`);
  await (await load()).main();
}
