import { type Command, runCommand } from '../../shared/cli/command.ts';
import { commands } from './commands/index.ts';

function topLevelHelp(all: readonly Command[]): string {
  const width = Math.max(...all.map((command) => command.name.length));
  return [
    'edgeloop: datasets in S3 become models on every gateway, with the results on a dashboard.',
    '',
    'Usage: edgeloop <command> [options]   (edgeloop <command> --help for details)',
    '',
    'Commands:',
    ...all.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
  ].join('\n');
}

export async function main(argv: string[], all: readonly Command[] = commands): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const err = (line: string) => process.stderr.write(`${line}\n`);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(topLevelHelp(all));
    return name ? 0 : 2;
  }
  const command = all.find((candidate) => candidate.name === name);
  if (!command) {
    err(`edgeloop: unknown command '${name}' (commands: ${all.map((c) => c.name).join(', ')})`);
    return 2;
  }
  return runCommand(command, rest, { out, err });
}
