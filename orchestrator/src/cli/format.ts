import type { ModelView, RouteStatsView, RouteView, VersionView } from './admin-client.js';

/**
 * How the `inferneo` command shows the admin API's answers to people: aligned tables, arms as
 * `name=share%`. Scripts use `--json` instead, so nothing here is a stable format.
 */

const NUMERIC_CELL = /^(-|-?[0-9]+(\.[0-9]+)?%?)$/;

/** Columns two spaces apart; a column whose cells are all numbers (or `-`) is right-aligned. */
export function formatTable(header: string[], rows: string[][]): string {
  const lines = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...lines.map((row) => (row[c] ?? '').length)));
  const right = header.map((_, c) => rows.length > 0 && rows.every((row) => NUMERIC_CELL.test(row[c] ?? '')));
  return lines
    .map((row) => header.map((_, c) => (right[c] ? (row[c] ?? '').padStart(widths[c]!) : (row[c] ?? '').padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

/** A share as a percentage with at most one decimal: 0.125 → `12.5%`, 1/3 → `33.3%`. */
export function formatPercent(share: number): string {
  return `${Number((share * 100).toFixed(1))}%`;
}

/** Each arm's share of the traffic: `stable=90% canary=10%`. */
export function formatArms(arms: RouteView['arms']): string {
  const total = arms.reduce((sum, a) => sum + a.weight, 0);
  return arms.map((a) => `${a.name}=${formatPercent(total > 0 ? a.weight / total : 0)}`).join(' ');
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function ms(value: number | null): string {
  return value === null ? '-' : value.toFixed(1);
}

/** Why a version is in its state; nothing when the reason only repeats the state (`unloaded`). */
function reasonOf(v: VersionView): string {
  return v.reason === undefined || v.reason === v.state ? '' : v.reason;
}

const byVersion = (a: { version: string }, b: { version: string }): number => Number(a.version) - Number(b.version);

export function formatModels(models: ModelView[]): string {
  const rows = [...models]
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((m) =>
      m.versions.length === 0
        ? [[m.name, '-', '-', '-', '-', '-', 'no versions']]
        : [...m.versions].sort(byVersion).map((v) => [m.name, v.version, v.state, yesNo(v.pinned), yesNo(v.serving), String(v.inflight), reasonOf(v)]),
    );
  return formatTable(['MODEL', 'VERSION', 'STATE', 'PINNED', 'SERVING', 'INFLIGHT', 'REASON'], rows);
}

export function formatRoutes(routes: RouteView[]): string {
  const rows = [...routes]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => [r.name, formatArms(r.arms), yesNo(r.sticky), r.shadow !== undefined ? `${r.shadow.model}:${r.shadow.version} ${r.shadow.percent}%` : '-']);
  return formatTable(['ROUTE', 'ARMS', 'STICKY', 'SHADOW'], rows);
}

/** One route in full: its arms with weights and shares, then rules, shadow and canary. */
export function formatRoute(route: RouteView): string {
  const total = route.arms.reduce((sum, a) => sum + a.weight, 0);
  const lines = [
    `route    ${route.name}`,
    `sticky   ${yesNo(route.sticky)}`,
    `updated  ${route.updated_at}`,
    '',
    formatTable(
      ['ARM', 'MODEL:VERSION', 'WEIGHT', 'SHARE'],
      route.arms.map((a) => [a.name, `${a.model}:${a.version}`, String(a.weight), formatPercent(total > 0 ? a.weight / total : 0)]),
    ),
  ];
  if (route.rules.length > 0 || route.shadow !== undefined || route.canary !== undefined) lines.push('');
  for (const r of route.rules) lines.push(`rule     ${r.header}: ${r.equals} -> ${r.arm}`);
  if (route.shadow !== undefined) lines.push(`shadow   ${route.shadow.percent}% mirrored to ${route.shadow.model}:${route.shadow.version}`);
  if (route.canary !== undefined) {
    const c = route.canary;
    lines.push(`canary   ${c.arm}: steps ${c.steps.join(', ')}% every ${c.interval_s} s; ${c.status.state}, step ${c.status.step + 1} of ${c.steps.length}${c.status.reason !== undefined ? ` (${c.status.reason})` : ''}`);
  }
  return lines.join('\n');
}

export function formatRouteStats(stats: RouteStatsView): string {
  const rows = stats.arms.map((a) => [
    a.arm,
    `${a.model}:${a.version}`,
    String(a.weight),
    String(a.requests),
    String(a.errors),
    formatPercent(a.error_rate),
    ms(a.latency_ms.p50),
    ms(a.latency_ms.p95),
    ms(a.latency_ms.p99),
  ]);
  return formatTable(['ARM', 'MODEL:VERSION', 'WEIGHT', 'REQUESTS', 'ERRORS', 'ERROR %', 'P50 MS', 'P95 MS', 'P99 MS'], rows);
}

/** `classifier v2: ready (pinned)`, with the reason of a failed or unloaded version. */
export function formatVersion(v: VersionView): string {
  return `${v.model} v${v.version}: ${v.state}${v.pinned ? ' (pinned)' : ''}${reasonOf(v) !== '' ? ` - ${reasonOf(v)}` : ''}`;
}
