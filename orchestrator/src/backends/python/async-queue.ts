/**
 * A queue that one producer pushes into and one consumer drains with `for await`: what turns the
 * callbacks of a streamed worker reply into an async iterator. The producer ends it with `end()`
 * or `fail(err)`; items pushed before either are still delivered, then the iteration returns or
 * throws `err`. Nothing is dropped and no consumer waits on a queue that has ended.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private done = false;
  private error: unknown = undefined;
  private failed = false;
  private wake: (() => void) | undefined;

  push(item: T): void {
    if (this.done) return;
    this.items.push(item);
    this.notify();
  }

  end(): void {
    this.done = true;
    this.notify();
  }

  fail(err: unknown): void {
    if (this.done) return;
    this.failed = true;
    this.error = err;
    this.end();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.head < this.items.length) {
        const item = this.items[this.head]!;
        this.items[this.head++] = undefined as T;
        if (this.head === this.items.length) {
          this.items.length = 0;
          this.head = 0;
        }
        yield item;
        continue;
      }
      if (this.done) {
        if (this.failed) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
