/**
 * Chooses the Triton endpoint for a call among those that hold the model and whose circuit is
 * closed. The backend depends on this interface only, so that another strategy (power of two
 * choices, weighted, locality) can replace the default.
 */

export interface Pickable {
  /** Calls in flight to this endpoint, from this process. */
  readonly outstanding: number;
}

export interface EndpointPicker {
  /** One of `candidates` (never empty). */
  pick<E extends Pickable>(candidates: readonly E[]): E;
}

/**
 * Least outstanding requests; ties are broken round-robin, so that idle endpoints share a light
 * load instead of the first one taking it all.
 */
export class LeastOutstandingPicker implements EndpointPicker {
  private turn = 0;

  pick<E extends Pickable>(candidates: readonly E[]): E {
    const n = candidates.length;
    const start = this.turn++ % n;
    let best = candidates[start]!;
    for (let i = 1; i < n; i++) {
      const c = candidates[(start + i) % n]!;
      if (c.outstanding < best.outstanding) best = c;
    }
    return best;
  }
}
