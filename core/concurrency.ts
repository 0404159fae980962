/**
 * Bounded concurrency, the one helper for it in the tree (the fleet simulator starts nodes with it; the
 * rollout engine resolves up to 100 job targets with it, a few at a time because IoT registry APIs have
 * low per-account rates).
 */

export interface MapLimitOptions {
  /** Stops taking new items once aborted. */
  signal?: AbortSignal;
  /** The error to reject with when `signal` aborts (named by the caller's area). */
  aborted?: () => Error;
}

/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping the results in input order. The first
 * failure (or `signal` aborting) stops taking new items, and the call rejects with it once those in flight
 * have settled, so nothing is left running behind the caller's back.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
  options: MapLimitOptions = {},
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      if (options.signal?.aborted) {
        failure = options.aborted?.() ?? options.signal.reason;
        break;
      }
      const i = next++;
      try {
        out[i] = await fn(items[i] as T);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure;
  return out;
}
