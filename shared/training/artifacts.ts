/** The files of one model version and its (unsigned) manifest, built from a training outcome. */
import { sha256Hex } from '../manifest.ts';
import type { Manifest } from '../schemas.ts';
import { modelFiles } from '../topology.ts';
import type { TrainingOutcome } from './train.ts';

export interface ArtifactFile {
  name: string;
  bytes: Uint8Array;
  contentType: string;
}

export function artifactFiles(outcome: Pick<TrainingOutcome, 'artifacts'>): ArtifactFile[] {
  return [
    { name: modelFiles.topology, bytes: outcome.artifacts.modelJson, contentType: 'application/json' },
    { name: modelFiles.weights, bytes: outcome.artifacts.weights, contentType: 'application/octet-stream' },
  ];
}

export interface ManifestInput {
  model: string;
  version: number;
  outcome: TrainingOutcome;
  lowConfidence: number;
  maxMissingFeatures?: number;
  datasetKey: string;
  datasetEtag?: string;
  datasetSha256: string;
  /** Labelled hard examples appended to the dataset for this run. */
  feedback?: { keys: string[]; rows: number };
  createdAt?: Date;
}

export function buildManifest(input: ManifestInput): Manifest {
  const { outcome } = input;
  return {
    schemaVersion: 1,
    model: input.model,
    version: input.version,
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    files: artifactFiles(outcome).map((file) => ({
      name: file.name,
      sha256: sha256Hex(file.bytes),
      size: file.bytes.byteLength,
    })),
    preprocessing: outcome.preprocessing,
    metrics: outcome.metrics,
    classDistribution: outcome.classDistribution,
    golden: outcome.golden,
    lowConfidence: input.lowConfidence,
    ...(input.maxMissingFeatures ? { maxMissingFeatures: input.maxMissingFeatures } : {}),
    ...(outcome.window ? { window: outcome.window.manifest } : {}),
    ...(outcome.anomaly ? { anomaly: outcome.anomaly } : {}),
    ...(outcome.novelty ? { novelty: outcome.novelty } : {}),
    ...(outcome.tuning ? { tuning: outcome.tuning } : {}),
    lineage: {
      datasetKey: input.datasetKey,
      ...(input.datasetEtag ? { datasetEtag: input.datasetEtag } : {}),
      datasetSha256: input.datasetSha256,
      rows: outcome.rows,
      backend: outcome.backend,
      seed: outcome.seed,
      ...(input.feedback && input.feedback.rows > 0 ? { feedback: input.feedback } : {}),
      ...(outcome.parts.length > 0 ? { parts: outcome.parts } : {}),
      ...(outcome.sample ? { sample: outcome.sample } : {}),
    },
  };
}

/** The stored form of a manifest (pretty JSON); its sha256 goes into the release notice. */
export function manifestBytes(manifest: Manifest): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
}
