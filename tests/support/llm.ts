import type { startStack } from './stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** A model's inference counter summed over every worker (a finished or cancelled sequence counts one). */
export async function workerInferences(stack: Stack, model = 'smollm2'): Promise<number> {
  let total = 0;
  for (const session of stack.pool.sessions()) {
    const reply = await stack.pool.request(session, { type: 'stats' }, 5000);
    for (const m of reply['models'] as { model: string; inference_count: number }[]) if (m.model === model) total += m.inference_count;
  }
  return total;
}

/** The value of the first sample of `name` in Prometheus text whose labels contain every `k="v"` of `labels` (comma-separated). */
export function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((p) => l.includes(p)));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}
