import { createHash } from 'node:crypto';

/**
 * How an arm is chosen. Weighted random for independent requests; weighted rendezvous hashing
 * (highest random weight) for sticky keys: each arm scores `-weight / ln(h(key, arm))` and the
 * highest wins. Every arm is chosen with probability weight/Σweights, a key keeps its arm while the
 * weights stay, and changing one arm's weight moves only keys to or from that arm — the fewest a
 * re-split can move.
 */

export interface Weighted {
  name: string;
  weight: number;
}

/** A uniform number in (0, 1) from key and arm: 48 bits of MD5, never exactly 0 or 1. */
export function unitHash(key: string, arm: string): number {
  const digest = createHash('md5').update(key).update('\u0000').update(arm).digest();
  return (digest.readUIntBE(0, 6) + 0.5) / 2 ** 48;
}

export function pickWeighted<T extends Weighted>(arms: readonly T[], random: () => number = Math.random): T | undefined {
  let total = 0;
  for (const a of arms) total += a.weight;
  if (total <= 0) return undefined;
  let r = random() * total;
  for (const a of arms) {
    if (a.weight <= 0) continue;
    r -= a.weight;
    if (r < 0) return a;
  }
  return arms.filter((a) => a.weight > 0).at(-1);
}

export function pickSticky<T extends Weighted>(arms: readonly T[], key: string): T | undefined {
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const a of arms) {
    if (a.weight <= 0) continue;
    const score = -a.weight / Math.log(unitHash(key, a.name));
    if (score > bestScore) {
      bestScore = score;
      best = a;
    }
  }
  return best;
}
