/**
 * The gateway package as a gateway installs it: built for this machine (`npm run
 * package:device`) and unpacked in a directory, for the benches that run what gateways run.
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Arch, buildDevicePackages, TOP_DIR } from '../../device/packaging/build.ts';
import { GATEWAY_NODE_FLAGS } from '../../device/packaging/node-flags.ts';

export interface UnpackedGateway {
  /** The command that runs the gateway (`edgeloop device`'s flags follow it). */
  command: string[];
  installDir: string;
  archive: { fileName: string; bytes: number } | undefined;
  buildSeconds: number;
}

/** Builds the package for this machine's architecture into `dir`/dist and unpacks it in `dir`/gateway. */
export async function unpackedGateway(dir: string): Promise<UnpackedGateway> {
  const started = performance.now();
  const [pkg] = await buildDevicePackages({ outDir: join(dir, 'dist'), arches: [process.arch as Arch] });
  const buildSeconds = (performance.now() - started) / 1000;
  if (!pkg) throw new Error(`no gateway package was built for ${process.arch}`);
  const installDir = join(dir, 'gateway');
  await mkdir(installDir, { recursive: true });
  execFileSync('tar', ['-xzf', pkg.file, '-C', installDir]);
  return {
    // Run as the systemd unit and the Greengrass recipe run it: with the package's node flags.
    command: [process.execPath, ...GATEWAY_NODE_FLAGS, join(installDir, TOP_DIR, 'bin', TOP_DIR)],
    installDir,
    archive: { fileName: pkg.fileName, bytes: pkg.archiveBytes },
    buildSeconds,
  };
}
