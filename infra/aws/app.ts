/** `cdk synth` / `cdk deploy` entry point (see cdk.json). */
import { errorMessage } from '../../shared/errors.ts';
import { buildApp } from './build-app.ts';

try {
  buildApp().app.synth();
} catch (error) {
  process.stderr.write(`edgeloop cdk app: ${errorMessage(error)}\n`);
  process.exitCode = 1;
}
