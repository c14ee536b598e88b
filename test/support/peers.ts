/**
 * Real peers the tests run against (Mosquitto, OpenSSL, the AWS CLI, Chromium, cfn-lint, a
 * tmpfs). `.ci/run` installs them, so under CI=true a missing one fails the run rather than
 * letting its tests skip quietly; elsewhere its tests skip with how to get it.
 */
export function peerAvailable(what: string, missing: string | undefined, install: string): boolean {
  if (missing === undefined) return true;
  if (process.env.CI) throw new Error(`CI must run the ${what} tests: ${missing} (${install})`);
  console.log(`skipping the ${what} tests: ${missing} (${install})`);
  return false;
}
