/** A training outcome's manifest as a gateway reads it: built, serialized and parsed back. */
import { type Manifest, ManifestSchema } from '../../shared/schemas.ts';
import { buildManifest, type ManifestInput } from '../../shared/training/artifacts.ts';

export function releasedManifest(
  outcome: ManifestInput['outcome'],
  extra: Partial<Omit<ManifestInput, 'outcome'>> = {},
): Manifest {
  return ManifestSchema.parse(
    JSON.parse(
      JSON.stringify(
        buildManifest({
          model: 'm',
          version: 1,
          outcome,
          lowConfidence: 0.6,
          datasetKey: 'k',
          datasetSha256: 'a'.repeat(64),
          ...extra,
        }),
      ),
    ),
  );
}
