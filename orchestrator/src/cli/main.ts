import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { AdminApiError, AdminClient, AdminUnreachableError } from './admin-client.js';
import { formatModels, formatRoute, formatRoutes, formatRouteStats, formatVersion } from './format.js';
import { addJobCommands } from './job-commands.js';
import { type RouteFlags, routeSpecFromFlags, routeSpecFromJson, RouteArgsError } from './route-args.js';

/**
 * The `inferneo` command (bin/inferneo.mjs): models, versions and routes of a running orchestrator,
 * through its admin API. Exit codes: 0 done, 1 the API or the connection failed, 2 a usage error
 * (unknown command or option, a bad flag value, no token). Errors are one line on stderr, never a
 * stack trace; `--json` prints the API's answers for scripts.
 */

export const DEFAULT_URL = 'http://127.0.0.1:8000';
/** Where the orchestrator writes the token it generates (relative to its working directory). */
export const DEFAULT_TOKEN_FILE = '.inferneo/admin-token';

export interface CliIo {
  /** @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** Relative `--source` and token file paths are taken from here. @defaultValue process.cwd() */
  cwd?: string;
  /** @defaultValue process.stdout */
  stdout?: (text: string) => void;
  /** @defaultValue process.stderr */
  stderr?: (text: string) => void;
  /** Read by `routes set --file -`. @defaultValue all of process.stdin */
  readStdin?: () => Promise<string>;
  /** Whether stderr is a terminal (`jobs submit` draws its progress bar in place). @defaultValue process.stderr.isTTY */
  tty?: boolean;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  actor?: string;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The first candidate with a non-empty value, as `[value, where it came from]`. */
function first(...candidates: [string | undefined, string][]): [string, string] | undefined {
  for (const [value, source] of candidates) if (value !== undefined && value !== '') return [value, source];
  return undefined;
}

/**
 * Runs one `inferneo` command line (without `node` and the script) and resolves with its exit code;
 * it never calls process.exit, so output is flushed and it can run in-process.
 */
export async function runCli(args: string[], io: CliIo = {}): Promise<number> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const stdout = io.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = io.stderr ?? ((text: string) => void process.stderr.write(text));
  const readStdin = io.readStdin ?? readAllStdin;
  /** Where the token in use came from, to say so when the API refuses it. */
  let tokenSource = '';

  const connect = async (opts: GlobalOptions): Promise<AdminClient> => {
    // Each setting with where it came from, so that an error can say which one to fix.
    const url = first([opts.url, '--url'], [env['INFERNEO_URL'], 'INFERNEO_URL']) ?? [DEFAULT_URL, 'the default'];
    const actor = first([opts.actor, '--actor'], [env['USER'], 'USER']);
    const file = path.resolve(cwd, env['INFERNEO_ADMIN_TOKEN_FILE'] || DEFAULT_TOKEN_FILE);
    const token =
      first([opts.token, '--token'], [env['INFERNEO_ADMIN_TOKEN'], 'INFERNEO_ADMIN_TOKEN']) ??
      first([await readFile(file, 'utf8').then((t) => t.trim(), () => undefined), file]);
    if (token === undefined) {
      throw new InvalidArgumentError(
        `no admin token: pass --token, set INFERNEO_ADMIN_TOKEN, or run inferneo in the directory where the orchestrator wrote ${DEFAULT_TOKEN_FILE} (there is none at ${file})`,
      );
    }
    tokenSource = token[1];
    try {
      return new AdminClient({ url: url[0], token: token[0], ...(actor !== undefined ? { actor: actor[0] } : {}) });
    } catch (err) {
      // The client's messages start with the option's name: `url: …`, `token: …`, `actor: …`.
      const field = /^(\w+):/.exec((err as Error).message)?.[1];
      const source = field === 'url' ? url[1] : field === 'actor' ? actor?.[1] : token[1];
      throw new InvalidArgumentError(`${(err as Error).message} (from ${source ?? 'the default'})`);
    }
  };

  /** Wraps an action: connects, calls the API, prints JSON or `human(answer)`. */
  const action =
    <A extends unknown[], T>(call: (client: AdminClient, command: Command, ...args: A) => Promise<T>, human: (answer: T) => string) =>
    async (...params: unknown[]): Promise<void> => {
      const command = params[params.length - 1] as Command;
      const opts = command.optsWithGlobals<GlobalOptions>();
      const client = await connect(opts);
      const answer = await call(client, command, ...(params.slice(0, command.registeredArguments.length) as A));
      stdout(`${opts.json === true ? JSON.stringify(answer, null, 2) : human(answer)}\n`);
    };

  const program = new Command('inferneo')
    .description('Manage the models, versions, routes and batch jobs of a running Inferneo orchestrator through its admin API.')
    .exitOverride()
    .configureOutput({
      writeOut: stdout,
      writeErr: stderr,
      outputError: (text, write) => write(text.replace(/^error: /, 'inferneo: ')),
    })
    .option('--url <url>', `orchestrator URL (default: $INFERNEO_URL, else ${DEFAULT_URL})`)
    .option('--token <token>', `admin bearer token (default: $INFERNEO_ADMIN_TOKEN, else the contents of ${DEFAULT_TOKEN_FILE})`)
    .option('--json', "print the API's JSON answer, for scripts")
    .option('--actor <name>', 'who you are, for the audit log (default: $USER)')
    .showHelpAfterError('(run with --help for usage)');

  const models = program.command('models').description('models and their versions');
  models
    .command('list')
    .description('every model and version: state, pinned, serving here, requests in flight')
    .action(action((c) => c.listModels(), formatModels));
  models
    .command('register')
    .description('register a model from a directory in Triton layout (config.pbtxt and version directories)')
    .argument('<name>', 'model name')
    .option('--source <dir>', "the model's directory (default: <model repository>/<name> on the orchestrator)")
    .addOption(new Option('--backend <backend>', 'which backend serves it (default: python)').choices(['python', 'triton']))
    .action(
      action(
        (c, cmd, name: string) => {
          const o = cmd.opts<{ source?: string; backend?: 'python' | 'triton' }>();
          return c.registerModel({ name, ...(o.source !== undefined ? { source: path.resolve(cwd, o.source) } : {}), ...(o.backend !== undefined ? { backend: o.backend } : {}) });
        },
        (m) => `registered model ${m.name} (${m.backend}, ${m.platform}) from ${m.source}; versions: ${m.versions.map((v) => v.version).join(', ') || 'none'}`,
      ),
    );
  models
    .command('register-version')
    .description("register one more version; its directory must exist in the model's directory (or --source)")
    .argument('<model>')
    .argument('<version>')
    .option('--source <dir>', "the directory holding the version's directory (default: the model's)")
    .option('--pinned', 'pin it: never evicted, unloaded or deleted')
    .action(
      action(
        (c, cmd, model: string, version: string) => {
          const o = cmd.opts<{ source?: string; pinned?: boolean }>();
          return c.registerVersion(model, { version, ...(o.source !== undefined ? { source: path.resolve(cwd, o.source) } : {}), ...(o.pinned === true ? { pinned: true } : {}) });
        },
        (v) => `registered ${formatVersion(v)}, from ${v.source}`,
      ),
    );
  const versionCommand = (name: string, description: string, call: (c: AdminClient, model: string, version: string) => Promise<Parameters<typeof formatVersion>[0]>): void => {
    models
      .command(name)
      .description(description)
      .argument('<model>')
      .argument('<version>')
      .action(action((c, _cmd, model: string, version: string) => call(c, model, version), formatVersion));
  };
  versionCommand('load', 'load a version (with its warm-up); returns when it is ready', (c, m, v) => c.loadVersion(m, v));
  versionCommand('unload', 'drain a version of its requests and unload it', (c, m, v) => c.unloadVersion(m, v));
  versionCommand('pin', 'pin a version: never evicted, unloaded or deleted', (c, m, v) => c.pinVersion(m, v));
  versionCommand('unpin', 'unpin a version', (c, m, v) => c.unpinVersion(m, v));
  models
    .command('delete')
    .description('unload and delete a model, or one version of it')
    .argument('<model>')
    .argument('[version]')
    .action(
      action(
        (c, _cmd, model: string, version: string | undefined) => (version === undefined ? c.deleteModel(model) : c.deleteVersion(model, version)),
        (d) => `deleted ${d.deleted}`,
      ),
    );

  const routes = program.command('routes').description('routes: logical model names that split traffic between versions');
  routes
    .command('list')
    .description('every route: arms with their share of traffic, sticky, shadow')
    .action(action((c) => c.listRoutes(), formatRoutes));
  routes
    .command('get')
    .description('one route in full')
    .argument('<route>')
    .action(action((c, _cmd, route: string) => c.getRoute(route), formatRoute));
  routes
    .command('set')
    .description('create or replace a route as a whole, from flags or from a JSON spec file')
    .argument('<route>')
    .option('--arm <spec>', 'an arm, MODEL:VERSION=WEIGHT[:NAME] (repeat for each arm)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--sticky', 'requests with the same x-inferneo-route-key header go to the same arm')
    .option('--rule <spec>', 'a header rule, HEADER=VALUE:ARM (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--shadow <spec>', 'mirror PERCENT of requests to a version, MODEL:VERSION=PERCENT')
    .option('--file <file>', 'the route spec as JSON (as in PUT /admin/routes/{route}); - reads stdin')
    .addHelpText(
      'after',
      '\nExamples:\n  inferneo routes set fraud --arm classifier:1=90:stable --arm classifier:2=10:canary --sticky\n' +
        '  inferneo routes set fraud --arm classifier:1=1:stable --arm classifier:2=1:canary --rule x-user-tier=beta:canary --shadow classifier:2=5\n' +
        '  inferneo routes get fraud --json > fraud.json && inferneo routes set fraud --file fraud.json',
    )
    .action(
      action(async (c, cmd, route: string) => {
        const o = cmd.opts<RouteFlags & { file?: string }>();
        if (o.file === undefined) return c.putRoute(route, routeSpecFromFlags(o));
        const mixed = (['arm', 'rule', 'shadow', 'sticky'] as const).filter((k) => o[k] !== undefined);
        if (mixed.length > 0) throw new RouteArgsError('--file', o.file, `give the route either in a file or as flags, not both (also given: ${mixed.map((k) => `--${k}`).join(', ')})`);
        let text: string;
        try {
          text = o.file === '-' ? await readStdin() : await readFile(path.resolve(cwd, o.file), 'utf8');
        } catch (err) {
          throw new RouteArgsError('--file', o.file, `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        return c.putRoute(route, routeSpecFromJson(text, o.file));
      }, formatRoute),
    );
  routes
    .command('stats')
    .description("per arm: requests, errors, latency percentiles (this orchestrator's, last 10 minutes)")
    .argument('<route>')
    .action(action((c, _cmd, route: string) => c.routeStats(route), formatRouteStats));
  routes
    .command('promote')
    .description('send all traffic to one arm (the others stay, at weight 0)')
    .argument('<route>')
    .argument('<arm>')
    .action(action((c, _cmd, route: string, arm: string) => c.promoteRoute(route, arm), formatRoute));
  routes
    .command('rollback')
    .description('restore the route as it was before its last change')
    .argument('<route>')
    .action(action((c, _cmd, route: string) => c.rollbackRoute(route), formatRoute));
  routes
    .command('delete')
    .description('delete a route')
    .argument('<route>')
    .action(action((c, _cmd, route: string) => c.deleteRoute(route), (d) => `deleted route ${d.deleted}`));

  addJobCommands(program, { action, connect: (command) => connect(command.optsWithGlobals<GlobalOptions>()), cwd, stdout, stderr, ...(io.tty !== undefined ? { tty: io.tty } : {}) });

  try {
    await program.parseAsync(args, { from: 'user' });
    return 0;
  } catch (err) {
    // Commander has printed its own message (or the help) already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof AdminUnreachableError) {
      stderr(`inferneo: ${err.message}; is the orchestrator running there? (set --url or INFERNEO_URL)\n`);
      return 1;
    }
    if (err instanceof AdminApiError) {
      const hint = err.status === 403 ? ` (the token came from ${tokenSource})` : '';
      stderr(`inferneo: ${err.message}${hint}\n`);
      return 1;
    }
    if (err instanceof InvalidArgumentError) {
      stderr(`inferneo: ${err.message}\n`);
      return 2;
    }
    stderr(`inferneo: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
