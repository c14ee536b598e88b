/**
 * The gateway package as a Greengrass v2 component: both archives of `npm run
 * package:device` (built at synth, reproducibly, so their asset hashes only move with the
 * code) are S3 assets, and the component version's recipe comes from
 * device/packaging/greengrass-recipe.ts with each archive's real URI and SHA-256 digest.
 * The device role behind the stack's role alias, which a Greengrass core device uses as its
 * token exchange role (nucleus `iotRoleAlias`), may read exactly those two objects.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as greengrassv2 from 'aws-cdk-lib/aws-greengrassv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { type Arch, archiveName, packageVersion, TARGET_ARCHES } from '../../../device/packaging/build.ts';
import { deviceRecipe, type RecipeArtifact } from '../../../device/packaging/greengrass-recipe.ts';
import { repoRoot } from '../paths.ts';

/**
 * Builds the archives into a fresh temp dir (test files synthesize in parallel) by running
 * the package script: esbuild's plugin API is asynchronous, a construct is not.
 */
export function buildDevicePackagesForSynth(): string {
  const outDir = mkdtempSync(join(tmpdir(), 'edgeloop-device-package-'));
  execFileSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'device', 'packaging', 'build.ts'), '--out', outDir],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return outDir;
}

export interface DeviceComponentProps {
  /** Gets s3:GetObject on the archives: the role alias's role, the token exchange role. */
  tokenExchangeRole: iam.IRole;
  /** Where prebuilt archives are (default: build them now). */
  packageDir?: string;
  /** The deployed stage (the recipe's default `stage`, for summary mode by Basic Ingest). */
  stage: string;
}

export class DeviceComponent extends Construct {
  readonly component: greengrassv2.CfnComponentVersion;
  readonly artifacts: Record<Arch, s3assets.Asset>;

  constructor(scope: Construct, id: string, props: DeviceComponentProps) {
    super(scope, id);
    const dir = props.packageDir ?? buildDevicePackagesForSynth();
    const version = packageVersion();
    const recipeArtifacts: RecipeArtifact[] = [];
    const artifacts: Partial<Record<Arch, s3assets.Asset>> = {};
    for (const arch of TARGET_ARCHES) {
      const fileName = archiveName(arch, version);
      const path = join(dir, fileName);
      const asset = new s3assets.Asset(this, `Package-${arch}`, { path });
      artifacts[arch] = asset;
      recipeArtifacts.push({
        arch,
        // Greengrass stores an artifact under the last segment of its URI.
        fileName: asset.s3ObjectKey.split('/').at(-1) ?? asset.s3ObjectKey,
        uri: asset.s3ObjectUrl,
        digest: createHash('sha256').update(readFileSync(path)).digest('base64'),
      });
      props.tokenExchangeRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['s3:GetObject'],
          resources: [
            Stack.of(this).formatArn({
              service: 's3',
              region: '',
              account: '',
              resource: asset.s3BucketName,
              resourceName: asset.s3ObjectKey,
            }),
          ],
        }),
      );
    }
    this.artifacts = artifacts as Record<Arch, s3assets.Asset>;
    this.component = new greengrassv2.CfnComponentVersion(this, 'Component', {
      inlineRecipe: Stack.of(this).toJsonString(deviceRecipe(version, recipeArtifacts, props.stage)),
    });
  }
}
