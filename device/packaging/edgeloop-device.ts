/**
 * The packaged gateway service's entry: `edgeloop device` on its own, so the bundle carries
 * the device code and nothing of the other commands (local stack, CDK, provisioning).
 * device/packaging/build.ts bundles it; bin/edgeloop-device (launcher.cjs) loads the bundle.
 */
import { runCommand } from '../../shared/cli/command.ts';
import { deviceCommand } from '../command.ts';

process.exitCode = await runCommand(deviceCommand, process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
