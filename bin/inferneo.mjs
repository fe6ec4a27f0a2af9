#!/usr/bin/env node
// The `inferneo` command; its code is compiled into dist/ by `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/orchestrator/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error(`inferneo: the CLI is not built yet: run \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}`);
  process.exit(1);
}
const { runCli } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2));
