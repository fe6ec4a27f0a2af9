import { InvalidArgumentError } from '../errors.js';
import { armName, NAME_PATTERN, type RouteSpecInput } from '../routing/route-spec.js';

/**
 * Turns the flags of `inferneo routes set` (`--arm`, `--rule`, `--shadow`, `--sticky`) or a JSON spec
 * file into the body of `PUT /admin/routes/{route}`. Only the syntax is checked here, each error
 * naming the flag and its value; what the spec refers to (models, versions) the API checks.
 */

type ArmInput = RouteSpecInput['arms'][number];
type RuleInput = NonNullable<RouteSpecInput['rules']>[number];
type ShadowInput = NonNullable<RouteSpecInput['shadow']>;

export interface RouteFlags {
  /** `MODEL:VERSION=WEIGHT[:NAME]`, one per arm. */
  arm?: string[];
  /** `HEADER=VALUE:ARM`. */
  rule?: string[];
  /** `MODEL:VERSION=PERCENT`. */
  shadow?: string;
  sticky?: boolean;
}

/** A flag whose value cannot be used; `flag` is e.g. `--arm`. */
export class RouteArgsError extends InvalidArgumentError {
  constructor(
    readonly flag: string,
    readonly value: string,
    problem: string,
  ) {
    super(`${flag} '${value}': ${problem}`);
  }
}

const VERSION = /^[0-9]{1,18}$/;
const NUMBER = /^[0-9]+(\.[0-9]+)?$/;

function checkName(flag: string, value: string, what: string, name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new RouteArgsError(flag, value, `${what} '${name}' is not a valid name (letters, digits, _ . -, starting with a letter or digit)`);
  }
}

function checkVersion(flag: string, value: string, version: string): void {
  if (!VERSION.test(version)) throw new RouteArgsError(flag, value, `VERSION '${version}' is not a version number such as 2`);
}

/** `MODEL:VERSION=WEIGHT[:NAME]`, e.g. `classifier:2=10:canary`. */
export function parseArm(value: string): ArmInput {
  const m = /^([^:=]*):([^:=]*)=([^:=]*)(?::([^:=]*))?$/.exec(value);
  if (m === null) throw new RouteArgsError('--arm', value, 'expected MODEL:VERSION=WEIGHT[:NAME], e.g. classifier:2=10:canary');
  const [, model = '', version = '', weight = '', name] = m;
  checkName('--arm', value, 'MODEL', model);
  checkVersion('--arm', value, version);
  if (!NUMBER.test(weight)) throw new RouteArgsError('--arm', value, `WEIGHT '${weight}' is not a number of 0 or more`);
  if (name !== undefined) checkName('--arm', value, 'NAME', name);
  return { ...(name !== undefined ? { name } : {}), model, version, weight: Number(weight) };
}

/** `HEADER=VALUE:ARM`, e.g. `x-user-tier=beta:canary`; the value may hold `:` and `=`, the arm may not. */
export function parseRule(value: string): RuleInput {
  const eq = value.indexOf('=');
  const colon = value.lastIndexOf(':');
  if (eq <= 0 || colon < eq) throw new RouteArgsError('--rule', value, 'expected HEADER=VALUE:ARM, e.g. x-user-tier=beta:canary');
  const header = value.slice(0, eq);
  const arm = value.slice(colon + 1);
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) throw new RouteArgsError('--rule', value, `HEADER '${header}' is not an HTTP header name`);
  checkName('--rule', value, 'ARM', arm);
  return { header, equals: value.slice(eq + 1, colon), arm };
}

/** `MODEL:VERSION=PERCENT`, e.g. `classifier:2=5`. */
export function parseShadow(value: string): ShadowInput {
  const m = /^([^:=]*):([^:=]*)=([^:=]*)$/.exec(value);
  if (m === null) throw new RouteArgsError('--shadow', value, 'expected MODEL:VERSION=PERCENT, e.g. classifier:2=5');
  const [, model = '', version = '', percent = ''] = m;
  checkName('--shadow', value, 'MODEL', model);
  checkVersion('--shadow', value, version);
  if (!NUMBER.test(percent) || Number(percent) > 100) throw new RouteArgsError('--shadow', value, `PERCENT '${percent}' is not a number from 0 to 100`);
  return { model, version, percent: Number(percent) };
}

/** The route spec the flags describe; header rules must name one of the arms. */
export function routeSpecFromFlags(flags: RouteFlags): RouteSpecInput {
  const armFlags = flags.arm ?? [];
  if (armFlags.length === 0) throw new InvalidArgumentError('a route needs at least one --arm MODEL:VERSION=WEIGHT[:NAME] (or a spec in --file)');
  const arms = armFlags.map(parseArm);
  const names = arms.map(armName);
  const rules = (flags.rule ?? []).map((r) => {
    const rule = parseRule(r);
    if (!names.includes(rule.arm)) throw new RouteArgsError('--rule', r, `no --arm is named '${rule.arm}'; the arms are ${names.join(', ')}`);
    return rule;
  });
  const spec: RouteSpecInput = { arms, sticky: flags.sticky === true, rules };
  if (flags.shadow !== undefined) spec.shadow = parseShadow(flags.shadow);
  return spec;
}

/**
 * The route spec in a `--file`'s JSON text. A route as `routes get --json` prints it is accepted too:
 * the fields the API adds (`name`, `updated_at`, `canary.status`) are dropped, so that a route can be
 * saved, edited and set again.
 */
export function routeSpecFromJson(text: string, file: string): RouteSpecInput {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new RouteArgsError('--file', file, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RouteArgsError('--file', file, 'expected a JSON object such as {"arms": [{"model": "classifier", "version": "1", "weight": 100}]}');
  }
  const { name: _name, updated_at: _updated, ...spec } = parsed as Record<string, unknown>;
  const canary = spec['canary'];
  if (typeof canary === 'object' && canary !== null && !Array.isArray(canary)) {
    const { status: _status, ...rest } = canary as Record<string, unknown>;
    spec['canary'] = rest;
  }
  return spec as RouteSpecInput;
}
