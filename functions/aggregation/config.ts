import { requiredEnv } from '../../shared/env.ts';
import { type FunctionName, functions } from '../../shared/topology.ts';

type EnvOf<F extends FunctionName> = Record<(typeof functions)[F]['env'][number], string>;

/** Every variable a function declares in topology, read once; throws naming the first missing one. */
export function functionEnv<F extends FunctionName>(name: F, env: NodeJS.ProcessEnv = process.env): EnvOf<F> {
  return Object.fromEntries(functions[name].env.map((key) => [key, requiredEnv(key, env)])) as EnvOf<F>;
}
