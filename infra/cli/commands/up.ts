import { dataDirOption, defineCommand } from '../../../shared/cli/command.ts';
import { buckets, datasetKeys } from '../../../shared/topology.ts';
import { localCredential } from '../../local/credentials.ts';
import { LOCAL_REGION } from '../../local/env.ts';
import { type InvokedEvent, startLocalStack } from '../../local/stack.ts';
import { colourEnabled, palette, renderTable } from '../ui.ts';

export const upCommand = defineCommand({
  name: 'up',
  summary:
    'run the embedded local stack (S3, IoT Core, DynamoDB, rules) in the foreground; --json also prints the region, credentials and bucket names its S3 accepts',
  usage: 'edgeloop up [--data-dir DIR] [--no-dashboard] [--json]',
  examples: ['edgeloop up', 'edgeloop up --data-dir /tmp/edgeloop --json'],
  options: {
    'data-dir': dataDirOption,
    'no-dashboard': { type: 'boolean', description: 'do not serve the local dashboard page' },
  },
  async run({ values, out, err }) {
    const json = values.json === true;
    const quiet = values.quiet === true;
    // With --json, stdout carries exactly one line (the endpoints); everything else is stderr.
    const log = (line: string) => (json ? err(line) : out(line));
    const stack = await startLocalStack({
      dataDir: String(values['data-dir']),
      dashboard: values['no-dashboard'] !== true,
      log: (line) => {
        if (!quiet) log(line);
      },
    });
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    if (!quiet) {
      stack.events.on('invoked', ({ fn, ms, error }: InvokedEvent) =>
        log(error ? `${fn} failed after ${ms} ms: ${error}` : `${fn} done in ${ms} ms`),
      );
    }

    // What a user needs to reach the local S3 with the AWS CLI or any SDK.
    const access = {
      region: LOCAL_REGION,
      credentials: localCredential(stack.dataDir),
      buckets: { datasets: buckets.datasets.localName, models: buckets.models.localName },
    };
    if (json) {
      out(JSON.stringify({ ...stack.endpoints, ...access }));
    } else {
      const colour = palette(colourEnabled(process.stdout));
      out(`edgeloop local stack running on ${stack.dataDir}`);
      const { dashboard, ...services } = stack.endpoints;
      for (const line of renderTable(Object.entries(services).map(([name, url]) => [`  ${name}`, url])))
        out(line);
      if (dashboard) out(`Dashboard: ${colour.cyan(dashboard)} (open it in a browser)`);
      out(
        `AWS CLI: AWS_ACCESS_KEY_ID=${access.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${access.credentials.secretAccessKey} AWS_DEFAULT_REGION=${access.region} aws --endpoint-url ${stack.endpoints.s3} s3 sync ./parts s3://${access.buckets.datasets}/${datasetKeys.partsFolder('MODEL', 'RUN')} (then put ${datasetKeys.successMarker} there to train)`,
      );
      out('Other edgeloop commands find it through --data-dir. Press Ctrl-C to stop.');
    }

    const signal = await stopped;
    log(`${signal}: stopping the local stack`);
    await stack.stop();
    return 0;
  },
});
