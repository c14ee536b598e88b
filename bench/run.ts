/**
 * `npm run bench`: runs every benchmark under bench/ in turn. Each prints its figure next to
 * a bare baseline measured in the same run, as a ratio, because these machines are shared and
 * absolute timings wander. Pass names to run a subset: `npm run bench -- train device`.
 */
type Bench = () => Promise<{ main(): Promise<unknown> }>;

/**
 * Each name runs its benches in order; `train` also runs the windowed models' bench and prints
 * the scale table (rows vs time, RSS); `device` runs the live-rate bench (device-live) first and
 * also prints bytes on the wire per inference, detail vs summary mode (device-wire).
 */
const benches: Record<string, Bench[]> = {
  train: [
    () => import('./train.ts'),
    () => import('./train-regression.ts'),
    () => import('./train-windows.ts'),
    () => import('./train-rul.ts'),
    () => import('./train-scale.ts'),
  ],
  'train-regression': [() => import('./train-regression.ts')],
  'train-scale': [() => import('./train-scale.ts')],
  'train-windows': [() => import('./train-windows.ts'), () => import('./train-rul.ts')],
  device: [() => import('./device-live.ts'), () => import('./device.ts'), () => import('./device-wire.ts')],
  'device-live': [() => import('./device-live.ts')],
  'device-wire': [() => import('./device-wire.ts')],
  'device-windows': [() => import('./device-windows.ts')],
  footprint: [() => import('./footprint.ts')],
  anomaly: [() => import('./anomaly.ts')],
  aggregate: [() => import('./aggregate.ts')],
  rollout: [() => import('./rollout.ts')],
  fleet: [() => import('./fleet-scale.ts')],
  'fleet-e2e': [() => import('./fleet-e2e.ts')],
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const wanted = process.argv.slice(2);
// The names above are for this runner; each bench reads its own flags from argv when run alone
// (npx tsx bench/NAME.ts ...), so here they run with their defaults.
process.argv.length = 2;
// Without names every bench runs once (train-scale, train-windows and train-regression are part of train).
const chosen = wanted.length
  ? wanted
  : Object.keys(benches).filter(
      (name) => !['train-scale', 'train-windows', 'train-regression', 'device-wire'].includes(name),
    );
for (const name of chosen) {
  const loads = benches[name];
  if (!loads) throw new Error(`no bench named ${name}: choose from ${Object.keys(benches).join(', ')}`);
  console.log(`\n== bench: ${name}`);
  for (const load of loads) await (await load()).main();
}
