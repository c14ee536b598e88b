import { type EnvVarKey, envVars } from './topology.ts';

/** Reads a required environment variable by its topology key, or throws naming it. */
export function requiredEnv(key: EnvVarKey, env: NodeJS.ProcessEnv = process.env): string {
  const name = envVars[key];
  const value = env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}
