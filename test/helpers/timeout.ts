// Bounded waits for tests. The timer is always cleared, so a wait that ended
// early leaves nothing that keeps the test process alive for the full bound
// (an uncleared Promise.race timer held reliability-shutdown's process open for
// 30 s after its last assertion).

/** Resolves with p's value, or with `onTimeout` after ms if p has not settled by then. */
export async function within<T, U>(p: Promise<T>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), ms);
  });
  try {
    return await Promise.race([p, bound]);
  } finally {
    clearTimeout(timer);
  }
}
