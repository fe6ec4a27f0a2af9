import assert from 'node:assert/strict';
import { formatArms, formatPercent, formatTable } from '../src/cli/format.js';
import { parseArm, parseRule, parseShadow, RouteArgsError, routeSpecFromFlags, routeSpecFromJson } from '../src/cli/route-args.js';

/** Asserts that `fn` throws a RouteArgsError for `flag` whose message matches `message`. */
function rejects(fn: () => unknown, flag: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RouteArgsError, String(err));
    assert.equal(err.flag, flag);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.match(err.message, message);
    return true;
  });
}

describe('cli/route-args', () => {
  it('parses --arm MODEL:VERSION=WEIGHT[:NAME]', () => {
    assert.deepEqual(parseArm('classifier:2=10:canary'), { name: 'canary', model: 'classifier', version: '2', weight: 10 });
    assert.deepEqual(parseArm('my.model-x_1:12=0.5'), { model: 'my.model-x_1', version: '12', weight: 0.5 });
  });

  it('rejects a malformed --arm, naming the flag, the value and the bad part', () => {
    rejects(() => parseArm('classifier=1'), '--arm', /^--arm 'classifier=1': expected MODEL:VERSION=WEIGHT\[:NAME\]/);
    rejects(() => parseArm('classifier:1'), '--arm', /expected MODEL:VERSION=WEIGHT/);
    rejects(() => parseArm('classifier:1=2:a:b'), '--arm', /expected MODEL:VERSION=WEIGHT/);
    rejects(() => parseArm('classifier:v1=2'), '--arm', /VERSION 'v1' is not a version number/);
    rejects(() => parseArm('classifier:1=-2'), '--arm', /WEIGHT '-2' is not a number of 0 or more/);
    rejects(() => parseArm('classifier:1=ten'), '--arm', /WEIGHT 'ten'/);
    rejects(() => parseArm(':1=2'), '--arm', /MODEL '' is not a valid name/);
    rejects(() => parseArm('classifier:1=2:'), '--arm', /NAME '' is not a valid name/);
    rejects(() => parseArm('classifier:1=2:-x'), '--arm', /NAME '-x' is not a valid name/);
  });

  it('parses --rule HEADER=VALUE:ARM, the value holding = and : as it may', () => {
    assert.deepEqual(parseRule('x-user-tier=beta:canary'), { header: 'x-user-tier', equals: 'beta', arm: 'canary' });
    assert.deepEqual(parseRule('x-v=a=b:c:stable'), { header: 'x-v', equals: 'a=b:c', arm: 'stable' });
    assert.deepEqual(parseRule('x-empty=:stable'), { header: 'x-empty', equals: '', arm: 'stable' });
    rejects(() => parseRule('x-user-tier:canary'), '--rule', /expected HEADER=VALUE:ARM/);
    rejects(() => parseRule('=beta:canary'), '--rule', /expected HEADER=VALUE:ARM/);
    rejects(() => parseRule('x tier=beta:canary'), '--rule', /HEADER 'x tier' is not an HTTP header name/);
  });

  it('parses --shadow MODEL:VERSION=PERCENT', () => {
    assert.deepEqual(parseShadow('classifier:2=5'), { model: 'classifier', version: '2', percent: 5 });
    rejects(() => parseShadow('classifier:2=101'), '--shadow', /PERCENT '101' is not a number from 0 to 100/);
    rejects(() => parseShadow('classifier:2'), '--shadow', /expected MODEL:VERSION=PERCENT/);
  });

  it('builds the whole spec from the flags; a rule must name an arm, default names included', () => {
    assert.deepEqual(routeSpecFromFlags({ arm: ['classifier:1=90', 'classifier:2=10:canary'], rule: ['x-tier=old:classifier-v1'], shadow: 'classifier:2=5', sticky: true }), {
      arms: [
        { model: 'classifier', version: '1', weight: 90 },
        { name: 'canary', model: 'classifier', version: '2', weight: 10 },
      ],
      sticky: true,
      rules: [{ header: 'x-tier', equals: 'old', arm: 'classifier-v1' }],
      shadow: { model: 'classifier', version: '2', percent: 5 },
    });
    assert.deepEqual(routeSpecFromFlags({ arm: ['classifier:1=1'] }), { arms: [{ model: 'classifier', version: '1', weight: 1 }], sticky: false, rules: [] });
    rejects(() => routeSpecFromFlags({ arm: ['classifier:1=1'], rule: ['x=y:canary'] }), '--rule', /no --arm is named 'canary'; the arms are classifier-v1/);
    assert.throws(() => routeSpecFromFlags({}), /at least one --arm/);
  });

  it('reads a JSON spec, dropping the fields `routes get --json` adds', () => {
    const saved = {
      name: 'fraud',
      arms: [{ name: 'a', model: 'm', version: '1', weight: 1 }],
      sticky: false,
      rules: [],
      canary: { arm: 'a', steps: [50, 100], interval_s: 60, min_requests: 20, status: { state: 'running', step: 0, updated_at: 'x' } },
      updated_at: '2025-01-01T00:00:00.000Z',
    };
    assert.deepEqual(routeSpecFromJson(JSON.stringify(saved), 'f.json'), {
      arms: [{ name: 'a', model: 'm', version: '1', weight: 1 }],
      sticky: false,
      rules: [],
      canary: { arm: 'a', steps: [50, 100], interval_s: 60, min_requests: 20 },
    });
    rejects(() => routeSpecFromJson('{"arms": [', 'f.json'), '--file', /^--file 'f\.json': not valid JSON/);
    rejects(() => routeSpecFromJson('[1]', '-'), '--file', /expected a JSON object/);
  });
});

describe('cli/format', () => {
  it('aligns columns, right-aligning numeric ones, with no trailing spaces', () => {
    assert.equal(
      formatTable(['ARM', 'WEIGHT', 'P50 MS', 'NOTE'], [['stable', '90', '1.5', ''], ['canary-long', '10%', '-', 'x']]),
      ['ARM          WEIGHT  P50 MS  NOTE', 'stable           90     1.5', 'canary-long     10%       -  x'].join('\n'),
    );
    assert.equal(formatTable(['ROUTE', 'ARMS'], []), 'ROUTE  ARMS');
  });

  it('shows arms as their share of the total weight', () => {
    assert.equal(formatArms([{ name: 'a', model: 'm', version: '1', weight: 3 }, { name: 'b', model: 'm', version: '2', weight: 1 }]), 'a=75% b=25%');
    assert.equal(formatArms([{ name: 'a', model: 'm', version: '1', weight: 0 }]), 'a=0%');
    assert.equal(formatPercent(1 / 3), '33.3%');
    assert.equal(formatPercent(0.125), '12.5%');
  });
});
