/**
 * "The caller went away", as cheaply as the hot path needs: one per HTTP request, so it avoids the
 * cost of an AbortController and EventTarget. `AbortSignal`s adapt to it with `fromAbortSignal`.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  /** Calls `listener` once when cancelled (never if it already was); returns a function that unsubscribes. */
  onCancel(listener: () => void): () => void;
}

export class CancelSource implements CancelSignal {
  private listener: (() => void) | undefined;
  private listeners: (() => void)[] | undefined;
  aborted = false;

  onCancel(listener: () => void): () => void {
    // The common case is one listener (the request's queue entry): no array for it.
    if (this.listener === undefined && this.listeners === undefined) {
      this.listener = listener;
      return () => {
        if (this.listener === listener) this.listener = undefined;
      };
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const i = this.listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.listeners!.splice(i, 1);
    };
  }

  cancel(): void {
    if (this.aborted) return;
    this.aborted = true;
    const one = this.listener;
    const many = this.listeners;
    this.listener = undefined;
    this.listeners = undefined;
    one?.();
    for (const l of many ?? []) l();
  }
}

export function fromAbortSignal(signal: AbortSignal): CancelSignal {
  return {
    get aborted() {
      return signal.aborted;
    },
    onCancel(listener) {
      signal.addEventListener('abort', listener, { once: true });
      return () => signal.removeEventListener('abort', listener);
    },
  };
}
