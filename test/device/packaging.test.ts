/**
 * `npm run package:device`: the archives are reproducible and hold what a gateway needs and
 * nothing of the developer checkout.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveName,
  type BuiltPackage,
  buildDevicePackages,
  bundleDevice,
  type DeviceBundle,
  sourceDateEpoch,
  TOP_DIR,
} from '../../device/packaging/build.ts';
import { GATEWAY_NODE_FLAGS } from '../../device/packaging/node-flags.ts';

interface Entry {
  header: Header;
  data: Buffer;
}

async function entriesOf(file: string): Promise<Entry[]> {
  const entries: Entry[] = [];
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => {
        entries.push({ header, data: Buffer.concat(chunks) });
        next();
      });
      stream.resume();
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  tar.end(gunzipSync(readFileSync(file)));
  await done;
  return entries;
}

/** ELF e_machine of a native binary: 0x3e x86-64, 0xb7 AArch64. */
const elfMachine = (data: Buffer) => data.readUInt16LE(18);

describe('npm run package:device', () => {
  let dirs: string[];
  let first: BuiltPackage[];
  let second: BuiltPackage[];
  let bundle: DeviceBundle;

  beforeAll(async () => {
    dirs = [
      await mkdtemp(join(tmpdir(), 'edgeloop-pkg-a-')),
      await mkdtemp(join(tmpdir(), 'edgeloop-pkg-b-')),
    ];
    first = await buildDevicePackages({ outDir: dirs[0] as string });
    second = await buildDevicePackages({ outDir: dirs[1] as string });
    bundle = await bundleDevice();
  }, 60_000);

  afterAll(async () => {
    for (const dir of dirs ?? []) await rm(dir, { recursive: true, force: true });
  });

  it('gives the same bytes twice, and SHA256SUMS lists both archives', () => {
    // Assess
    expect(first.map((pkg) => pkg.fileName)).toEqual([archiveName('x64'), archiveName('arm64')]);
    expect(second.map((pkg) => pkg.sha256)).toEqual(first.map((pkg) => pkg.sha256));
    const sums = readFileSync(join(dirs[0] as string, 'SHA256SUMS'), 'utf8');
    expect(sums).toBe(first.map((pkg) => `${pkg.sha256}  ${pkg.fileName}\n`).join(''));
  });

  it('stores sorted entries under edgeloop-device/, owned 0:0, all at the same fixed time', async () => {
    // Act
    const entries = await entriesOf(first[0]?.file as string);

    // Assess
    const names = entries.map((entry) => entry.header.name);
    expect(names).toEqual([...names].sort());
    expect(names.every((name) => name === TOP_DIR || name.startsWith(`${TOP_DIR}/`))).toBe(true);
    for (const { header } of entries) {
      expect([header.uid, header.gid, header.uname, header.gname]).toEqual([0, 0, '', '']);
      expect(header.mtime?.getTime()).toBe(sourceDateEpoch({}).getTime());
    }
  });

  it('bundles the device code without the TypeScript loader, CDK, local stack, esbuild or unused tfjs parts', () => {
    // Assess
    expect(bundle.packages).toEqual(
      expect.arrayContaining([
        '@aws-sdk/client-s3',
        'aws-crt',
        'aws-iot-device-sdk-v2',
        'zod',
        'mqtt',
        'modbus-serial',
        'node-opcua-client',
      ]),
    );
    expect(bundle.packages).toEqual(
      expect.arrayContaining(['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers']),
    );
    const absent = [
      'tsx',
      'typescript',
      'esbuild',
      'aws-cdk-lib',
      'cdk-nag',
      'constructs',
      'dynalite',
      'fast-xml-parser',
      'aedes',
      'chart.js',
      '@aws-sdk/client-dynamodb',
      '@tensorflow/tfjs',
      '@tensorflow/tfjs-backend-webgl',
      '@tensorflow/tfjs-converter',
      '@tensorflow/tfjs-data',
    ];
    expect(bundle.packages.filter((name) => absent.includes(name))).toEqual([]);
  });

  it.each([
    ['x64', 0, 0x3e],
    ['arm64', 1, 0xb7],
  ])(
    'holds the bundle, wasm kernels and only the %s aws-crt binary: no node_modules, tsx or TypeScript',
    async (arch, index, machine) => {
      // Act
      const entries = await entriesOf(first[index]?.file as string);
      const byName = new Map(entries.map((entry) => [entry.header.name.slice(TOP_DIR.length + 1), entry]));

      // Assess
      const files = entries.filter((entry) => entry.header.type === 'file');
      const names = files.map((entry) => entry.header.name.slice(TOP_DIR.length + 1));
      // Code some gateways never run sits in chunks beside the entry, loaded on first use.
      const chunks = names.filter(
        (name) => name.startsWith('lib/') && name.endsWith('.mjs') && name !== 'lib/edgeloop-device.mjs',
      );
      for (const input of ['opcua-source', 'mqtt-source', 'modbus-source'])
        expect(
          chunks.some((name) => name.startsWith(`lib/${input}-`)),
          input,
        ).toBe(true);
      expect(byName.get('lib/edgeloop-device.mjs')?.data.toString()).not.toContain('OPCUAClient');
      expect(names.filter((name) => !chunks.includes(name)).sort()).toEqual([
        'README.md',
        'bin/edgeloop-device',
        'lib/THIRD-PARTY-LICENSES.txt',
        'lib/aws-crt-nodejs.node',
        'lib/edgeloop-device.mjs',
        'lib/tfjs-backend-wasm-simd.wasm',
        'lib/tfjs-backend-wasm.wasm',
        'package.json',
        'packaging/device.example.json',
        'packaging/edgeloop-device.service',
      ]);
      expect(byName.get('bin/edgeloop-device')?.header.mode).toBe(0o755);
      // The unit runs node with the package's V8 flags (V8 sizes its heap at start).
      expect(byName.get('packaging/edgeloop-device.service')?.data.toString()).toContain(
        `ExecStart=/usr/bin/node ${GATEWAY_NODE_FLAGS.join(' ')} /opt/edgeloop-device/bin/edgeloop-device `,
      );
      expect(byName.get('bin/edgeloop-device')?.data.toString()).toMatch(/^#!\/usr\/bin\/env node\n/);
      expect(elfMachine(byName.get('lib/aws-crt-nodejs.node')?.data as Buffer)).toBe(machine);
      const manifest = JSON.parse(byName.get('package.json')?.data.toString() ?? '{}');
      expect(manifest.edgeloop).toMatchObject({ platform: 'linux', arch, libc: 'glibc' });
      const bundle = files
        .filter((entry) => entry.header.name.endsWith('.mjs'))
        .map((entry) => entry.data.toString())
        .join('\n');
      // The local stack, the CDK and the TypeScript loader stay in the repository. (MQTT.js
      // carries its package.json, whose dev dependencies name aedes-cli: look for aedes' own parts.)
      for (const absent of [
        'tsx/esm',
        'aws-cdk-lib',
        'dynalite',
        'LocalS3',
        'aedes-packet',
        'aedes-persistence',
      ])
        expect(bundle.includes(absent), absent).toBe(false);
    },
  );
});
